"""Per-stage timing of the training transforms on decoded samples: warp, colour, targets (decode excluded)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ocrdet.data.transforms.augment import AugmentConfig, color_jitter, random_warp
from ocrdet.data.transforms.targets import TargetConfig, make_db_targets

STAGES = ("warp", "color", "targets", "total")


@dataclass(frozen=True)
class StageTiming:
    """One table row: wall-clock milliseconds per sample of one stage over ``samples`` runs."""

    stage: str
    samples: int
    mean_ms: float
    median_ms: float
    p95_ms: float


def profile_transforms(
    samples: Sequence[tuple[np.ndarray, Sequence[np.ndarray], np.ndarray]],
    n: int,
    augment: AugmentConfig = AugmentConfig(),
    targets: TargetConfig = TargetConfig(),
    seed: int = 0,
) -> list[StageTiming]:
    """Time ``n`` training transforms, cycling through ``samples``.

    samples: (uint8 (H, W, 3) image, float (N_i, 2) polygons, bool (N,) ignore flags) triples. Returns one row
    per stage in STAGES, in that order ("total" is the sum of the others per sample).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not samples:
        raise ValueError("no samples to profile")
    rng = np.random.default_rng(seed)
    times = {stage: [] for stage in STAGES}
    for i in range(n + 1):  # run 0 warms up (first-call costs: numba's runtime, lazy imports), not recorded
        image, polygons, ignore = samples[i % len(samples)]
        start = time.perf_counter()
        warped, moved, kept = random_warp(image, polygons, rng, augment)
        warped_at = time.perf_counter()
        color_jitter(warped, rng, augment)
        colored_at = time.perf_counter()
        make_db_targets(moved, np.asarray(ignore, dtype=bool)[kept], augment.size, augment.size, targets)
        end = time.perf_counter()
        if i == 0:
            continue
        times["warp"].append(warped_at - start)
        times["color"].append(colored_at - warped_at)
        times["targets"].append(end - colored_at)
        times["total"].append(end - start)
    return [
        StageTiming(stage, n, 1e3 * float(np.mean(t)), 1e3 * float(np.median(t)), 1e3 * float(np.percentile(t, 95)))
        for stage, t in times.items()
    ]
