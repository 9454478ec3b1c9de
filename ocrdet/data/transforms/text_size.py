"""How much text training ignores for being small: ``ocrdet profile text-size --data ROOT``.

``make_db_targets`` makes a line don't care when, in the training crop, its clipped bounding box is thinner than
``targets.min_text_size``; with a zoom (``augment.scale``) that shrinks receipts, most small print is then never
learned. ``thin_fraction`` measures that share on real samples and draws, for choosing ``augment.scale`` and
``targets.min_text_size`` (``data.augment.scale=[2,4] data.targets.min_text_size=4``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ocrdet.data.sources.base import Sample
from ocrdet.data.transforms.augment import AugmentConfig, warp_polygons
from ocrdet.data.transforms.item import draw_train
from ocrdet.data.transforms.maps import TargetConfig


def box_short_sides(polygons: list[np.ndarray], size: int) -> np.ndarray:
    """Shorter side of each polygon's bounding box after clipping to a (size, size) canvas (the targets' rule)."""
    if not polygons:
        return np.zeros(0)
    clipped = [np.clip(p, 0.0, size - 1) for p in polygons]
    return np.array([np.min(p.max(axis=0) - p.min(axis=0)) for p in clipped])


def thin_fraction(
    samples: Iterable[Sample],
    augment: AugmentConfig,
    targets: TargetConfig,
    rng: np.random.Generator,
    draws: int = 4,
) -> float:
    """Share of the care lines in ``draws`` training crops per sample that are thinner than ``min_text_size``."""
    thin = total = 0
    for sample in samples:
        height, width = sample.image.shape[:2]
        for _ in range(draws):
            draw = draw_train(height, width, sample.polygons, rng, augment)
            moved, kept = warp_polygons(sample.polygons, draw.matrix, draw.size)
            care = [p for p, ignore in zip(moved, sample.ignore[kept], strict=True) if not ignore]
            thin += int((box_short_sides(care, draw.size) < targets.min_text_size).sum())
            total += len(care)
    return thin / total if total else 0.0
