"""Backbones from timm, as feature pyramids (strides 4, 8, 16, 32)."""

from __future__ import annotations

import timm
import torch
from torch import nn

from ocrdet.settings import SettingsError


def check_builtin_backbone(name: str) -> None:
    """SettingsError unless timm builds ``name`` from its own code (no ``hf-hub:`` or other remote name)."""
    if not timm.is_model(name):
        raise SettingsError(
            f"model.backbone {name!r} is not an architecture built into timm {timm.__version__}"
            " (a checkpoint's backbone is never fetched)"
        )


class TimmBackbone(nn.Module):
    """Any timm model that supports ``features_only``; returns four maps at strides 4-32.

    ``pretrained`` downloads weights, so it is off by default (nothing can be fetched offline).
    ``grad_checkpointing`` (timm ``set_grad_checkpointing``): the inner stages keep no activations and run again
    in the backward pass: same gradients, less memory, one more forward pass of those stages. Their BatchNorm
    running statistics are then updated twice per step, which only makes those averages move faster.
    """

    def __init__(self, name: str = "resnet18", pretrained: bool = False, grad_checkpointing: bool = False) -> None:
        super().__init__()
        self.body = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(1, 2, 3, 4))
        if grad_checkpointing:
            self.body.set_grad_checkpointing(True)
        self.channels: list[int] = list(self.body.feature_info.channels())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)
