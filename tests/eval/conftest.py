"""Shared fixtures: the ICDAR 2015 test ground truth and a perturbed copy of it as detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ocrdet.bench.eval_bench import perturb
from ocrdet.data.io.format import load_annotations


@pytest.fixture(scope="session")
def icdar_gt_path(shared_data: Path) -> Path:
    path = shared_data / "icdar2015_test_gt" / "jsons" / "test.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def icdar_images(icdar_gt_path: Path) -> list[tuple[str, list[np.ndarray], np.ndarray, list[str | None]]]:
    """(name, polygons, ignore flags, transcriptions) of the 500 ICDAR 2015 test images."""
    annotations = load_annotations(icdar_gt_path)
    out = []
    for name, image in annotations.images.items():
        polys, ignore = image.polygons()
        out.append((name, polys, ignore, [w.transcription for w in image.words.values()]))
    return out


@pytest.fixture(scope="session")
def icdar_detections(icdar_images) -> list[list[np.ndarray]]:
    """Perturbed ground truth (jittered, dropped, merged, false, reversed and bow-tie polygons), seeded."""
    rng = np.random.default_rng(2015)
    return [perturb(polys, rng) for _, polys, _, _ in icdar_images]
