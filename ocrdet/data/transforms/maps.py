"""The DB maps' names, dtypes and settings: what ``targets`` draws, batches carry, caches store and the loss
reads.

Apart from ``targets`` so that what only names the maps or holds their settings (``ocrdet.model.loss``, the data
config, predict) does not import its numba kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAP_DTYPES = {"prob": np.uint8, "prob_mask": np.uint8, "thresh": np.float32, "thresh_mask": np.uint8}
"""dtype of each map ``make_db_targets`` returns."""
MAP_KEYS = tuple(MAP_DTYPES)
"""The maps, in the order batches and validation caches keep them."""


@dataclass(frozen=True)
class TargetConfig:
    """Settings of the DB targets (the DB paper's defaults).

    shrink_ratio: r in the offset distance D = A (1 - r^2) / L, in (0, 1).
    thresh_min, thresh_max: range the border map is scaled to, 0 <= thresh_min < thresh_max <= 1.
    min_text_size: polygons whose bounding box is thinner than this many pixels are don't-care.
    """

    shrink_ratio: float = 0.4
    thresh_min: float = 0.3
    thresh_max: float = 0.7
    min_text_size: float = 8.0

    def __post_init__(self) -> None:
        if not 0.0 < self.shrink_ratio < 1.0:
            raise ValueError(f"shrink_ratio must lie in (0, 1), got {self.shrink_ratio}")
        if not 0.0 <= self.thresh_min < self.thresh_max <= 1.0:
            raise ValueError(
                f"need 0 <= thresh_min < thresh_max <= 1, got thresh_min={self.thresh_min}, "
                f"thresh_max={self.thresh_max}"
            )
        if not self.min_text_size >= 0.0:
            raise ValueError(f"min_text_size must be >= 0, got {self.min_text_size}")
