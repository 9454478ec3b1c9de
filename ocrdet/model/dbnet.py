"""DBNet = backbone -> neck -> DB head; takes uint8 images and normalizes them on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ocrdet.model.backbone import TimmBackbone
from ocrdet.model.head import DBHead
from ocrdet.model.neck import NECKS
from ocrdet.settings import check_settings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet18"
    pretrained: bool = False
    neck: str = "fpn"
    inner_channels: int = 256
    neck_channels: int = 256
    k: float = 50.0
    grad_checkpointing: bool = False
    """Recompute the backbone's inner stages in the backward pass: less activation memory for big backbones."""
    channels_last: bool = True
    """NHWC memory for the input and the convolution weights (faster convolutions on GPUs and most CPUs)."""

    def __post_init__(self) -> None:
        check_settings(self, "model", {"inner_channels": (1, 2048), "neck_channels": (1, 2048), "k": (1e-3, 1e3)})


class DBNet(nn.Module):
    """In: uint8 (B, H, W, 3) RGB images (H, W multiples of 32). Out: dict of (B, 1, H, W) maps."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.backbone = TimmBackbone(config.backbone, config.pretrained, config.grad_checkpointing)
        if config.neck not in NECKS:
            raise ValueError(f"unknown neck {config.neck!r}; choose one of {sorted(NECKS)}")
        self.neck = NECKS[config.neck](self.backbone.channels, config.inner_channels, config.neck_channels)
        self.head = DBHead(config.neck_channels, config.k)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> float (B, 3, H, W) in the model's memory format, normalized on the device."""
        x = images.permute(0, 3, 1, 2).float()
        return ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.neck(self.backbone(self.normalize(images))))
