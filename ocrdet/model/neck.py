"""Necks: fuse the backbone pyramid into one stride-4 feature map (DBNet's FPN, or a UNet decoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class FPN(nn.Module):
    """DBNet's FPN: top-down sum, a 3x3 conv per level, upsample all to stride 4 and concatenate.

    In: four maps (B, C_i, H/2^(i+2), W/2^(i+2)). Out: (B, out_channels, H/4, W/4).
    """

    def __init__(self, in_channels: list[int], inner_channels: int = 256, out_channels: int = 256) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, inner_channels, 1, bias=False) for c in in_channels)
        self.smooth = nn.ModuleList(_conv_bn_relu(inner_channels, out_channels // 4) for _ in in_channels)
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        laterals = [conv(f) for conv, f in zip(self.lateral, features, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:])
        size = laterals[0].shape[-2:]
        outs = [
            F.interpolate(conv(x), size=size) if i else conv(x)
            for i, (conv, x) in enumerate(zip(self.smooth, laterals, strict=True))
        ]
        return torch.cat(outs, dim=1)


class UNet(nn.Module):
    """UNet decoder: upsample, concatenate the skip, two convs; ends at stride 4 with ``out_channels``."""

    def __init__(self, in_channels: list[int], inner_channels: int = 128, out_channels: int = 256) -> None:
        super().__init__()
        deepest = in_channels[-1]
        self.reduce = _conv_bn_relu(deepest, inner_channels, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                _conv_bn_relu(inner_channels + c, inner_channels), _conv_bn_relu(inner_channels, inner_channels)
            )
            for c in reversed(in_channels[:-1])
        )
        self.out = _conv_bn_relu(inner_channels, out_channels, 1)
        self.out_channels = out_channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.reduce(features[-1])
        for block, skip in zip(self.blocks, reversed(features[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.out(x)


NECKS: dict[str, type[nn.Module]] = {"fpn": FPN, "unet": UNet}
