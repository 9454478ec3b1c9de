"""``ocrdet bench data``: the baseline data pipeline against ours, stage by stage, in one process on the same images.

Baseline (as the original project did it): Pillow decodes the full image at every step; albumentations fits it
to ``size``, zooms/rotates (``Affine``), pads and random-crops to ``size``, jitters brightness/contrast and
normalizes to float32 on the CPU; the textbook DB maps (``data/transforms/targets_reference.py``) are drawn; the default
collate stacks float tensors. Ours: images come from the prepared cache (prepared once beforehand: reported on
its own row, not in the totals), one fused uint8 warp + colour jitter (``data/transforms/augment.py``), the vectorized
maps (``ocrdet.data.transforms.targets``) and a uint8 collate; normalization happens in the model step on the device.
Both draw the same kind of random warp (zoom 0.5-2x of the fit scale, +-10 degrees, crop to ``size``).

"collate/transfer" also copies the batch to the GPU when there is one (ours from pinned memory).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from ocrdet.bench.common import (
    PREPARE_ROW,
    BaselineItem,
    BenchRow,
    SourceView,
    Timer,
    apply_with_polygons,
    baseline_decode,
    baseline_items,
    device,
    plot_rows,
    stage_rows,
    synthetic_receipts,
    timed_prepare,
    to_device,
    warm_up_device,
)
from ocrdet.data.config import AUTO, CacheConfig
from ocrdet.data.loaders.native import DetectionDataset, collate, init_worker
from ocrdet.data.loaders.workers import SAMPLES, choose, format_rates, measure_workers
from ocrdet.data.sources.cache import CacheSource
from ocrdet.data.transforms.augment import AugmentConfig, color_jitter, random_warp
from ocrdet.data.transforms.maps import MAP_KEYS
from ocrdet.data.transforms.targets import TargetConfig, make_db_targets
from ocrdet.data.transforms.targets_reference import reference_db_targets

STAGES = ("decode", "augment", "targets", "collate/transfer")


@dataclass(frozen=True)
class PipelineRun:
    """Seconds spent per stage over ``samples`` samples, and the last batch (to check what came out)."""

    seconds: dict[str, float]
    samples: int
    batch: dict[str, torch.Tensor]


def baseline_transform(size: int, seed: int) -> A.Compose:
    """The baseline's albumentations chain: uint8 (H, W, 3) + xy keypoints -> float32 (size, size, 3)."""
    return A.Compose(
        [
            A.LongestMaxSize(max_size=size),
            A.Affine(scale=(0.5, 2.0), rotate=(-10, 10), fit_output=True, border_mode=cv2.BORDER_CONSTANT, p=1.0),
            A.PadIfNeeded(size, size, position="top_left", border_mode=cv2.BORDER_CONSTANT),
            A.RandomCrop(size, size),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=1.0),
            A.Normalize(),
        ],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        seed=seed,
    )


def _baseline_augment(
    transform: A.Compose, image: np.ndarray, polygons: list[np.ndarray], ignore: np.ndarray, size: int
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Run the chain; keep the polygons whose box meets the crop, as ours does."""
    image, moved = apply_with_polygons(transform, image, polygons)
    kept = [i for i, p in enumerate(moved) if (p.max(axis=0) > 0).all() and (p.min(axis=0) < size).all()]
    return image, [moved[i] for i in kept], ignore[kept]


def _baseline_item(transform: A.Compose, item: BaselineItem, size: int, timer: Timer) -> dict[str, torch.Tensor]:
    with timer("decode"):
        image, polygons = baseline_decode(item)
    with timer("augment"):
        image, polygons, ignore = _baseline_augment(transform, image, polygons, item.ignore, size)
    with timer("targets"):
        maps = reference_db_targets(polygons, ignore, size, size)
    with timer("collate/transfer"):
        tensors = {"image": torch.from_numpy(image.transpose(2, 0, 1))}
        tensors.update({key: torch.from_numpy(maps[key]) for key in MAP_KEYS})
    return tensors


def run_baseline(items: list[BaselineItem], size: int, batch_size: int, seed: int = 0) -> PipelineRun:
    """The baseline pipeline over ``items`` in this process, timed per stage."""
    transform, timer, target = baseline_transform(size, seed), Timer(STAGES), device()
    pending: list[dict[str, torch.Tensor]] = []
    batch: dict[str, torch.Tensor] = {}
    for k, item in enumerate(items):
        pending.append(_baseline_item(transform, item, size, timer))
        if len(pending) == batch_size or k == len(items) - 1:
            with timer("collate/transfer"):
                batch = default_collate(pending)
                if target is not None:
                    batch = to_device(batch, target, pin=False)
            pending = []
    return PipelineRun(timer.seconds, len(items), batch)


def _stack_ours(items: list[dict[str, np.ndarray]], target: torch.device | None) -> dict[str, torch.Tensor]:
    """uint8 (B, S, S, 3) images and (B, S, S) maps (``MAP_DTYPES``); pinned and copied to ``target`` when given."""
    batch = {key: torch.from_numpy(np.stack([item[key] for item in items])) for key in ("image", *MAP_KEYS)}
    return batch if target is None else to_device(batch, target, pin=True)


def run_ours(source: CacheSource, indices: list[int], size: int, batch_size: int, seed: int = 0) -> PipelineRun:
    """Our pipeline over ``source[indices]`` in this process, timed per stage."""
    rng, timer, target = np.random.default_rng(seed), Timer(STAGES), device()
    augment = AugmentConfig(size=size)
    pending: list[dict[str, np.ndarray]] = []
    batch: dict[str, torch.Tensor] = {}
    for k, index in enumerate(indices):
        with timer("decode"):
            sample = source.get(index)
        with timer("augment"):
            image, polygons, kept = random_warp(sample.image, sample.polygons, rng, augment)
            image = color_jitter(image, rng, augment)
        with timer("targets"):
            maps = make_db_targets(polygons, sample.ignore[kept], size, size)
        pending.append({"image": image, **maps})
        if len(pending) == batch_size or k == len(indices) - 1:
            with timer("collate/transfer"):
                batch = _stack_ours(pending, target)
            pending = []
    return PipelineRun(timer.seconds, len(indices), batch)


class _BaselineDataset(Dataset):
    """The baseline pipeline as a Dataset (one albumentations chain per worker process)."""

    def __init__(self, items: list[BaselineItem], size: int) -> None:
        self.items, self.size = items, size
        self.transform: A.Compose | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.transform is None:
            info = torch.utils.data.get_worker_info()
            self.transform = baseline_transform(self.size, 0 if info is None else info.id)
        return _baseline_item(self.transform, self.items[index], self.size, Timer(STAGES))


def _loader_rate(dataset: Dataset, batch_size: int, workers: int, collate_fn: Any, pin: bool, epochs: int = 3) -> float:
    """Samples/s of a DataLoader epoch, the median of ``epochs`` after a warm-up epoch (worker start-up excluded)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=True,
        collate_fn=collate_fn,
        pin_memory=pin,
    )
    for _ in loader:
        pass
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        for _ in loader:
            pass
        rates.append(len(dataset) / (time.perf_counter() - start))
    return statistics.median(rates)


def _auto(dataset: Dataset, batch_size: int, samples: int, report: Callable[[str], None]) -> int:
    """``--workers auto``: our DataLoader measured at 0..cores workers; the table reported, the choice returned."""

    def loader(workers: int) -> DataLoader:
        return DataLoader(
            dataset, batch_size, shuffle=True, num_workers=workers, collate_fn=collate, worker_init_fn=init_worker
        )

    rates = measure_workers(loader, samples=samples)
    chosen = choose(rates)
    report(format_rates(rates, chosen))
    return chosen


def _compare(
    root: Path,
    split: str,
    n: int,
    size: int,
    batch_size: int,
    workers: int | str,
    cache: Path,
    report: Callable[[str], None],
) -> list[BenchRow]:
    warm_up_device()
    items = baseline_items(root, split)
    indices = [k % len(items) for k in range(n)]
    source, prepare_ms = timed_prepare(root, split, cache, CacheConfig())
    chosen = [items[i] for i in indices]
    run_baseline(chosen[:1], size, 1)  # warm-up: first-call costs (numba's runtime, lazy imports) are not timed
    run_ours(source, indices[:1], size, 1)
    baseline, ours = run_baseline(chosen, size, batch_size), run_ours(source, indices, size, batch_size)
    rows = stage_rows(baseline.seconds, baseline.samples, ours.seconds, ours.samples, "total, 1 process")
    ours_set = DetectionDataset(SourceView(source, indices), True, AugmentConfig(size=size), TargetConfig())
    if workers == AUTO:
        workers = _auto(ours_set, batch_size, max(n, SAMPLES), report)
    if workers > 0:
        pin = torch.cuda.is_available()
        ref_rate = _loader_rate(_BaselineDataset(chosen, size), batch_size, workers, default_collate, pin)
        ours_rate = _loader_rate(ours_set, batch_size, workers, collate, pin)
        rows.append(BenchRow(f"total, DataLoader {workers} workers", 1000 / ref_rate, 1000 / ours_rate))
    rows.append(BenchRow(PREPARE_ROW, math.nan, prepare_ms))
    return rows


def bench_data(
    root: Path | None,
    split: str = "train",
    n: int = 64,
    size: int = AugmentConfig.size,
    batch_size: int = 8,
    plot: Path | None = None,
    workers: int | str = 2,
    report: Callable[[str], None] = print,
) -> list[BenchRow]:
    """Time the baseline and our pipeline on ``n`` samples (cycling over the split's images) at ``size``.

    root: a data set ROOT, or None for ``n`` synthetic receipts generated into a temporary folder.
    workers: also time both as DataLoaders with this many worker processes (0: skip; ``auto``: the count
    ``data.num_workers=auto`` picks, after ``report``-ing its table of rates per worker count). The cache is prepared
    in a temporary folder first. Returns the rows that ``format_table`` prints; ``plot`` also draws them.
    """
    with tempfile.TemporaryDirectory(prefix="ocrdet-bench-") as tmp:
        if root is None:
            root, split = synthetic_receipts(Path(tmp), "train", n), "train"
        rows = _compare(Path(root), split, n, size, batch_size, workers, Path(tmp) / "cache", report)
    if plot is not None:
        plot_rows(rows, plot)
    return rows
