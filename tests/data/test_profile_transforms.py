from __future__ import annotations

import numpy as np
import pytest

from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.data.transforms.profile import STAGES, profile_transforms


def test_profile_reports_every_stage_per_sample() -> None:
    image = np.full((300, 200, 3), 255, dtype=np.uint8)
    polygons = [np.array([[20, 30], [150, 30], [150, 60], [20, 60]], dtype=np.float32)]
    rows = profile_transforms([(image, polygons, np.array([False]))], 3, AugmentConfig(size=128))
    assert [row.stage for row in rows] == list(STAGES)
    assert all(row.samples == 3 and 0 <= row.median_ms <= row.p95_ms for row in rows)
    by_stage = {row.stage: row.mean_ms for row in rows}
    assert by_stage["total"] == pytest.approx(by_stage["warp"] + by_stage["color"] + by_stage["targets"], rel=1e-6)


def test_profile_refuses_nothing_to_do() -> None:
    with pytest.raises(ValueError, match="no samples"):
        profile_transforms([], 1)
    with pytest.raises(ValueError, match="n must be"):
        profile_transforms([(np.zeros((4, 4, 3), np.uint8), [], np.zeros(0, bool))], 0)
