"""DB head: probability and threshold maps at full input resolution, and the differentiable binarization."""

from __future__ import annotations

import torch
from torch import nn


def _branch(channels: int) -> nn.Sequential:
    """conv 3x3 -> two 2x transposed convs -> sigmoid: (B, C, H/4, W/4) -> (B, 1, H, W)."""
    mid = channels // 4
    return nn.Sequential(
        nn.Conv2d(channels, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, mid, 2, 2),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, 1, 2, 2),
        nn.Sigmoid(),
    )


def step_function(prob: torch.Tensor, thresh: torch.Tensor, k: float) -> torch.Tensor:
    """Approximate binary map 1 / (1 + exp(-k (P - T))), always in fp32.

    In half precision exp(-k * x) overflows for |x| > ~0.2 at k = 50, which wrecked fp16 training
    in earlier projects; computing it in fp32 costs nothing measurable.
    """
    with torch.autocast(device_type=prob.device.type, enabled=False):
        return torch.sigmoid(k * (prob.float() - thresh.float()))


class DBHead(nn.Module):
    """Returns raw maps only: ``prob`` always, ``thresh`` and ``binary`` while training. Each (B, 1, H, W)."""

    def __init__(self, in_channels: int, k: float = 50.0) -> None:
        super().__init__()
        self.prob = _branch(in_channels)
        self.thresh = _branch(in_channels)
        self.k = k

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        prob = self.prob(x)
        if not self.training:
            return {"prob": prob}
        thresh = self.thresh(x)
        return {"prob": prob, "thresh": thresh, "binary": step_function(prob, thresh, self.k)}
