"""DB loss: balanced BCE (3:1 hard negatives) on the probability map, masked L1 on the threshold map,
Dice on the approximate binary map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ocrdet.data.transforms.maps import MAP_KEYS
from ocrdet.settings import check_settings


@dataclass(frozen=True)
class LossWeights:
    prob: float = 5.0
    thresh: float = 10.0
    binary: float = 1.0
    negative_ratio: float = 3.0

    def __post_init__(self) -> None:
        check_settings(self, "loss", dict.fromkeys(("prob", "thresh", "binary", "negative_ratio"), (0.0, 1e6)))


def balanced_bce(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, negative_ratio: float) -> torch.Tensor:
    """BCE over all positives and the hardest ``negative_ratio`` x as many negatives. Shapes (B, H, W)."""
    positive = gt * mask
    negative = (1 - gt) * mask
    n_pos, n_available = (int(n) for n in torch.stack([positive.sum(), negative.sum()]).tolist())  # one sync
    n_neg = min(n_available, int(n_pos * negative_ratio))
    with torch.autocast(device_type=pred.device.type, enabled=False):  # CUDA autocast refuses BCE on any dtype
        loss = F.binary_cross_entropy(pred.float().clamp(1e-6, 1 - 1e-6), gt.float(), reduction="none")
    pos_loss = (loss * positive).sum()
    neg_loss = torch.topk((loss * negative).reshape(-1), n_neg).values.sum() if n_neg else loss.new_zeros(())
    return (pos_loss + neg_loss) / (n_pos + n_neg + 1e-6)


def masked_l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((pred.float() - gt).abs() * mask).sum() / (mask.sum() + 1e-6)


def dice_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pred = pred.float()
    intersection = (pred * gt * mask).sum()
    union = (pred * mask).sum() + (gt * mask).sum() + 1e-6
    return 1 - 2.0 * intersection / union


class DBLoss(nn.Module):
    """Inputs: head outputs (B, 1, H, W) and targets ``prob``, ``prob_mask``, ``thresh``, ``thresh_mask`` (B, H, W)."""

    def __init__(self, weights: LossWeights = LossWeights()) -> None:
        super().__init__()
        self.weights = weights

    def forward(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``targets`` may hold any dtype (the data pipeline sends the 0/1 maps as uint8); they are made float here,
        on the device."""
        w = self.weights
        targets = {key: targets[key].float() for key in MAP_KEYS}
        prob, mask = targets["prob"], targets["prob_mask"]
        parts = {
            "loss_prob": balanced_bce(outputs["prob"][:, 0], prob, mask, w.negative_ratio),
            "loss_thresh": masked_l1(outputs["thresh"][:, 0], targets["thresh"], targets["thresh_mask"]),
            "loss_binary": dice_loss(outputs["binary"][:, 0], prob, mask),
        }
        parts["loss"] = w.prob * parts["loss_prob"] + w.thresh * parts["loss_thresh"] + w.binary * parts["loss_binary"]
        return parts
