"""Benchmark of evaluation and post-processing: ``ocrdet bench eval``.

Times the IoU metric on a ground-truth file against a perturbed copy of itself (bulk fast path, and the
per-pair reference loop of ``ocrdet.eval.iou_hmean_reference`` in the same run), the whole ``evaluate_files``
command path, CLEval, and post-processing of one 640 x 640 map with ~100 boxes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ocrdet.data.config import EVAL_SIZE
from ocrdet.data.io.format import load_annotations
from ocrdet.data.io.predictions import write_predictions
from ocrdet.eval.cleval import cleval_image
from ocrdet.eval.evaluate import evaluate_files, ground_truth
from ocrdet.eval.iou_hmean import match_images
from ocrdet.eval.iou_hmean_reference import reference_match_image
from ocrdet.model.postprocess import PostprocessConfig, postprocess


def perturb(polys: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Detections made from ground truth: jittered (sigma 2 px), ~10% dropped, ~8% merged with the next
    word into one box, some reversed (counter-clockwise) or turned into bow-ties, 0-2 false boxes added."""
    dets = []
    i = 0
    while i < len(polys):
        p = np.asarray(polys[i], dtype=np.float64)
        r = rng.random()
        if r < 0.1:
            i += 1
            continue
        if r < 0.18 and i + 1 < len(polys):
            both = np.concatenate([p, polys[i + 1]])
            (x0, y0), (x1, y1) = both.min(axis=0), both.max(axis=0)
            dets.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
            i += 2
            continue
        q = p + rng.normal(0.0, 2.0, p.shape)
        if rng.random() < 0.1:
            q = q[::-1]
        if len(q) == 4 and rng.random() < 0.03:
            q = q[[0, 2, 1, 3]]
        dets.append(q)
        i += 1
    for _ in range(int(rng.integers(0, 3))):
        x, y, w, h = rng.uniform(0, 1200), rng.uniform(0, 680), rng.uniform(5, 80), rng.uniform(5, 30)
        dets.append(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]]))
    return dets


def synthetic_map(n_boxes: int = 100, size: int = EVAL_SIZE, seed: int = 0) -> np.ndarray:
    """float32 (size, size) probability map with ``n_boxes`` slightly rotated, blurred text boxes in rows."""
    rng = np.random.default_rng(seed)
    prob = np.zeros((size, size), dtype=np.float32)
    cols = 5
    rows = -(-n_boxes // cols)
    pitch_x, pitch_y = size / cols, size / rows
    for k in range(n_boxes):
        r, c = divmod(k, cols)
        centre = ((c + 0.5) * pitch_x + rng.uniform(-5, 5), (r + 0.5) * pitch_y + rng.uniform(-1, 1))
        box = cv2.boxPoints((centre, (rng.uniform(0.4, 0.8) * pitch_x, 0.45 * pitch_y), rng.uniform(-8, 8)))
        cv2.fillPoly(prob, [np.round(box).astype(np.int32)], float(rng.uniform(0.7, 0.95)))
    return cv2.GaussianBlur(prob, (5, 5), 1.0)


@dataclass(frozen=True)
class BenchRow:
    name: str
    seconds: float
    note: str = ""
    baseline: str = ""
    """Name of the row this one is compared to (ratio = baseline seconds / these seconds)."""


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_eval(gt_path: str | Path, repeats: int = 3) -> list[BenchRow]:
    """Time the evaluation pieces on ``gt_path`` (e.g. the ICDAR 2015 test GT) vs. its perturbed copy."""
    gts = list(ground_truth(load_annotations(gt_path)).values())
    rng = np.random.default_rng(0)
    dets = [perturb(polys, rng) for polys, _, _ in gts]
    images = [(polys, ignore, det) for (polys, ignore, _), det in zip(gts, dets, strict=True)]
    n = len(images)
    rows = [BenchRow(f"IoU match, bulk ({n} images)", _best(lambda: match_images(images), repeats))]
    rows.append(
        BenchRow(
            "IoU match, per-pair reference loop",
            _best(lambda: [reference_match_image(*image) for image in images], 1),
            baseline=rows[0].name,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        pred_path = Path(tmp) / "pred.csv"
        names = list(load_annotations(gt_path).images)
        write_predictions(dict(zip(names, dets, strict=True)), pred_path)
        rows.append(
            BenchRow(
                "evaluate_files IoU (load GT + CSV, match)",
                _best(lambda: evaluate_files(gt_path, pred_path), repeats),
            )
        )
    rows.append(
        BenchRow(
            f"CLEval ({n} images)",
            _best(lambda: [cleval_image(p, i, d, t) for (p, i, t), d in zip(gts, dets, strict=True)], 1),
        )
    )
    prob = synthetic_map()
    config = PostprocessConfig()
    polys, _ = postprocess(prob, config)
    times = []
    for _ in range(100):
        start = time.perf_counter()
        postprocess(prob, config)
        times.append(time.perf_counter() - start)
    rows.append(
        BenchRow(
            f"postprocess 640x640, {len(polys)} boxes",
            statistics.median(times),
            note=f"min {1000 * min(times):.2f} ms",
        )
    )
    return rows


def format_bench(rows: Sequence[BenchRow]) -> str:
    """Aligned table: name, milliseconds, ratio to the baseline row (how many times slower), note."""
    seconds = {row.name: row.seconds for row in rows}
    width = max(len(row.name) for row in rows) + 2
    lines = [f"{'benchmark':<{width}}{'ms':>11}{'ratio':>9}  note"]
    for row in rows:
        ratio = f"{row.seconds / seconds[row.baseline]:.1f}x" if row.baseline else ""
        lines.append(f"{row.name:<{width}}{1000 * row.seconds:>11.2f}{ratio:>9}  {row.note}".rstrip())
    return "\n".join(lines)
