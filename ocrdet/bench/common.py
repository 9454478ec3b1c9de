"""What the baseline-vs-ours benchmarks share: the rows and their table and chart, the stage timer, the device
helpers, and how the baseline reads a split (Pillow, full resolution, EXIF applied)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageOps

from ocrdet.data.config import CacheConfig
from ocrdet.data.io.decode import ORIENTATION_TAG, orientation_matrix, transform_points
from ocrdet.data.io.format import load_annotations, split_paths
from ocrdet.data.io.synth import generate_dataset
from ocrdet.data.sources.base import Sample
from ocrdet.data.sources.cache import CacheSource
from ocrdet.data.sources.prepare import prepare_cache

SYNTH_SEED = 0
"""Seed of the synthetic receipts a bench generates when it is given no data set."""


@dataclass(frozen=True)
class BenchRow:
    """One line of the table; times in ms per sample, NaN where a pipeline has no such stage."""

    stage: str
    baseline_ms: float
    ours_ms: float

    @property
    def baseline_per_s(self) -> float:
        return 1000.0 / self.baseline_ms

    @property
    def ours_per_s(self) -> float:
        return 1000.0 / self.ours_ms

    @property
    def speedup(self) -> float:
        """Baseline time over ours (NaN where one is missing)."""
        return self.baseline_ms / self.ours_ms


class Timer:
    """Adds the wall time of ``with timer(stage):`` blocks per stage."""

    def __init__(self, stages: Sequence[str]) -> None:
        self.seconds = dict.fromkeys(stages, 0.0)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[stage] += time.perf_counter() - start


def stage_rows(
    baseline: dict[str, float], baseline_count: int, ours: dict[str, float], ours_count: int, total: str
) -> list[BenchRow]:
    """One row per stage of the (equal-keyed) seconds-per-stage dicts, in ms per item (sample or image), then
    their sum labelled ``total``."""
    rows = [BenchRow(s, 1000 * baseline[s] / baseline_count, 1000 * ours[s] / ours_count) for s in baseline]
    return [*rows, BenchRow(total, sum(r.baseline_ms for r in rows), sum(r.ours_ms for r in rows))]


def timed_prepare(
    root: Path, split: str, cache_dir: Path, config: CacheConfig, with_targets: bool = False
) -> tuple[CacheSource, float]:
    """The prepared cache of ``split`` and what preparing it cost, in ms per image (its own row, not in totals)."""
    start = time.perf_counter()
    source = CacheSource(prepare_cache(root, split, cache_dir, config, with_targets=with_targets))
    return source, 1000 * (time.perf_counter() - start) / len(source)


PREPARE_ROW = "prepare (one-off, not in totals)"


def synthetic_receipts(folder: Path, split: str, n: int) -> Path:
    """``n`` synthetic receipts (seed ``SYNTH_SEED``) generated into split ``split`` of ``folder/synth``."""
    root = folder / "synth"
    generate_dataset(root, n_train=n if split == "train" else 0, n_val=n if split == "val" else 0, seed=SYNTH_SEED)
    return root


class SourceView:
    """Samples ``indices`` of a source (indices may repeat), with the same protocol: ``names``, ``len``, ``get``."""

    def __init__(self, source: CacheSource, indices: Sequence[int]) -> None:
        self.source, self.indices = source, list(indices)
        self.names = [source.names[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, index: int) -> Sample:
        return self.source.get(self.indices[index])


def device() -> torch.device | None:
    """The GPU when there is one, else None (tensors stay on the CPU)."""
    return torch.device("cuda") if torch.cuda.is_available() else None


def synchronize() -> None:
    """Wait for queued GPU work, so that a timed block ends when its work does."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def to_device(batch: dict[str, Any], target: torch.device, pin: bool) -> dict[str, torch.Tensor]:
    """The batch's tensors on ``target`` (from pinned memory when ``pin``), copies finished; other values dropped."""
    tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if pin:
        tensors = {k: v.pin_memory() for k, v in tensors.items()}
    moved = {k: v.to(target, non_blocking=pin) for k, v in tensors.items()}
    synchronize()
    return moved


def warm_up_device() -> None:
    """Create the CUDA context and the pinned-memory allocator before anything is timed."""
    target = device()
    if target is not None:
        torch.zeros(1).pin_memory().to(target)
        synchronize()


@dataclass(frozen=True)
class BaselineItem:
    """One image as the baseline reads it: file and stored-frame float32 (N_i, 2) polygons, bool (N,) flags."""

    path: Path
    polygons: list[np.ndarray]
    ignore: np.ndarray


def baseline_items(root: Path, split: str) -> list[BaselineItem]:
    """Every annotated image of ``ROOT``'s ``split``, in the annotation file's order."""
    image_dir, json_path = split_paths(root, split)
    return [BaselineItem(image_dir / name, *a.polygons()) for name, a in load_annotations(json_path).images.items()]


def baseline_decode(item: BaselineItem) -> tuple[np.ndarray, list[np.ndarray]]:
    """Pillow, full resolution, EXIF applied; polygons moved into the upright frame."""
    with Image.open(item.path) as img:
        matrix = orientation_matrix(img.getexif().get(ORIENTATION_TAG, 1), img.width, img.height)
        image = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    return image, [transform_points(matrix, p) for p in item.polygons]


def apply_with_polygons(
    transform: A.Compose, image: np.ndarray, polygons: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run an albumentations chain (xy keypoints) on an image and its polygons; float64 (N_i, 2) polygons out."""
    out = transform(image=image, keypoints=np.concatenate(polygons) if len(polygons) else np.zeros((0, 2)))
    points = np.asarray(out["keypoints"], dtype=np.float64)[:, :2]
    moved = np.split(points, np.cumsum([len(p) for p in polygons])[:-1]) if len(polygons) else []
    return out["image"], moved


def _format(value: float, unit: str = "") -> str:
    if math.isnan(value):
        return "-"
    return f"{value:,.1f}{unit}" if value < 100 else f"{value:,.0f}{unit}"


def format_table(rows: Sequence[BenchRow], unit: str = "sample") -> str:
    """The rows as a fixed-width text table: ms per ``unit`` and ``unit``s/s per pipeline, and the speedup."""
    header = ("stage", "baseline ms", "baseline /s", "ours ms", "ours /s", "speedup")
    lines = [header] + [
        (
            r.stage,
            _format(r.baseline_ms),
            _format(r.baseline_per_s),
            _format(r.ours_ms),
            _format(r.ours_per_s),
            _format(r.speedup, "x"),
        )
        for r in rows
    ]
    return text_table(lines) + f"\n(ms per {unit}; /s = {unit}s per second; speedup = baseline time / ours)"


def text_table(lines: Sequence[Sequence[str]], text_columns: int = 1) -> str:
    """Fixed-width columns, the first line a header underlined with dashes; the first ``text_columns`` columns
    are aligned left, the others (numbers) right."""
    widths = [max(len(line[k]) for line in lines) for k in range(len(lines[0]))]
    text = [
        "  ".join(
            cell.ljust(w) if k < text_columns else cell.rjust(w)
            for k, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def plot_rows(rows: Sequence[BenchRow], path: Path, unit: str = "sample") -> None:
    """Horizontal bars of ``unit``s/s per stage (log scale), baseline against ours, with the speedups; PNG."""
    figure = Figure(figsize=(9, 0.7 * len(rows) + 1.5))
    axes = figure.subplots()
    y = np.arange(len(rows))
    baseline = [0.0 if math.isnan(r.baseline_ms) else r.baseline_per_s for r in rows]
    ours = [r.ours_per_s for r in rows]
    axes.barh(y - 0.2, baseline, height=0.4, label="baseline", color="tab:gray")
    axes.barh(y + 0.2, ours, height=0.4, label="ours", color="tab:blue")
    for k, row in enumerate(rows):
        if not math.isnan(row.speedup):
            label = f"{row.speedup:.1f}x"
            axes.annotate(label, (ours[k], y[k] + 0.2), xytext=(4, 0), textcoords="offset points", va="center")
    axes.set_yticks(y, [r.stage for r in rows])
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel(f"{unit}s / s (log scale)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
