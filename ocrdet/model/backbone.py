"""Backbones from timm, as feature pyramids (strides 4, 8, 16, 32)."""

from __future__ import annotations

import timm
import torch
from torch import nn


class TimmBackbone(nn.Module):
    """Any timm model that supports ``features_only``; returns four maps at strides 4-32.

    ``pretrained`` downloads weights, so it is off by default (nothing can be fetched offline).
    """

    def __init__(self, name: str = "resnet18", pretrained: bool = False, grad_checkpointing: bool = False) -> None:
        super().__init__()
        self.body = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(1, 2, 3, 4))
        if grad_checkpointing:
            self.body.set_grad_checkpointing(True)
        self.channels: list[int] = list(self.body.feature_info.channels())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)
