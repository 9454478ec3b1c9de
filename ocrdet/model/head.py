"""DB head: probability and threshold maps at full input resolution, and the differentiable binarization.

Under mixed precision (``trainer.precision=bf16-mixed|16-mixed``) the convolutions run in half precision, but
everything after the last convolution is computed in fp32, so the maps the loss sees are fp32:

- the sigmoids: in bf16 sigmoid(x) rounds to exactly 1.0 for x > ~6.2 (fp16: x > ~8.3), where the loss's clamp
  then cuts the gradient of a confident mistake to zero;
- the step function 1 / (1 + exp(-k (P - T))): in fp16, exp(-k x) overflows for x < -0.22 at k = 50 and its
  gradient becomes inf / inf = NaN (the original project's FP16 run lost most of its H-mean that way), and in
  bf16 the difference P - T keeps only ~3 significant digits before it is multiplied by k.
"""

from __future__ import annotations

import torch
from torch import nn


def _branch(channels: int) -> nn.Sequential:
    """conv 3x3 -> two 2x transposed convs: (B, C, H/4, W/4) -> (B, 1, H, W) logits."""
    mid = channels // 4
    return nn.Sequential(
        nn.Conv2d(channels, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, mid, 2, 2),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, 1, 2, 2),
    )


def fp32_sigmoid(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid of (B, 1, H, W) logits of any float dtype, computed and returned in fp32 (autocast off)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return torch.sigmoid(logits.float())


def step_function(prob: torch.Tensor, thresh: torch.Tensor, k: float) -> torch.Tensor:
    """Approximate binary map 1 / (1 + exp(-k (P - T))) of (B, 1, H, W) maps, always computed in fp32.

    Written as sigmoid(k (P - T)), which has no overflowing intermediate and a finite gradient everywhere.
    """
    return fp32_sigmoid(k * (prob.float() - thresh.float()))


class DBHead(nn.Module):
    """Returns raw fp32 maps only: ``prob`` always, ``thresh`` and ``binary`` while training. Each (B, 1, H, W)."""

    def __init__(self, in_channels: int, k: float = 50.0) -> None:
        super().__init__()
        self.prob = _branch(in_channels)
        self.thresh = _branch(in_channels)
        self.k = k

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        prob = fp32_sigmoid(self.prob(x))
        if not self.training:
            return {"prob": prob}
        thresh = fp32_sigmoid(self.thresh(x))
        return {"prob": prob, "thresh": thresh, "binary": step_function(prob, thresh, self.k)}
