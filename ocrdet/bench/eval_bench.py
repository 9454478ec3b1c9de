"""Benchmark of evaluation and post-processing: ``ocrdet bench eval``.

The references are the tools users compare with: the official RRC IoU algorithm on Polygon3
(``ocrdet.eval.iou_hmean_reference``) and PyPI cleval (``ocrdet.eval.cleval_reference``), both dev extras.
``ocrdet evaluate`` and each reference run as whole processes (``python -m``, best of a few runs) on a
ground-truth file (default: 404 synthetic receipts) against a perturbed copy of it, and their figures are
compared; then the IoU matching in one process, CLEval, and post-processing of one 640 x 640 map.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import ocrdet
from ocrdet.bench.common import BenchRow, format_table, synthetic_receipts
from ocrdet.data.config import EVAL_SIZE
from ocrdet.data.io.predictions import write_predictions
from ocrdet.eval.cleval import CLEval
from ocrdet.eval.files import read_annotation_polygons
from ocrdet.eval.iou_hmean import match_images
from ocrdet.eval.iou_hmean_reference import reference_match_image
from ocrdet.model.postprocess import PostprocessConfig, postprocess

SYNTH_RECEIPTS = 404
"""Receipts the bench generates when it is given no ground truth (the issue's comparison size)."""


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


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _process(args: list[str]) -> Callable[[], dict]:
    """A whole ``python -m`` process on this checkout's code, returning the JSON it prints last."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(ocrdet.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    )

    def run() -> dict:
        done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args[:1])} failed: {done.stderr.strip().splitlines()[-1:]}")
        return json.loads(done.stdout)

    return run


def _start_up() -> None:
    """The start-up every timed process pays: the interpreter and numpy."""
    subprocess.run([sys.executable, "-c", "import numpy"], check=True)


def _timed(fn: Callable[[], dict], repeats: int, floor: list[float]) -> tuple[float, dict]:
    """(best wall seconds of ``repeats`` runs, the last result); before each run, one start-up (``_start_up``) is
    timed into ``floor``, so that the floor is measured under the same load as the runs."""
    best, result = math.inf, {}
    for _ in range(repeats):
        floor.append(_best(_start_up, 1))
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _same(ours: dict, reference: dict) -> str:
    keys = ("precision", "recall", "hmean")
    worst = max(abs(ours[k] - reference[k]) for k in keys)
    return "same P/R/H" if worst <= 1e-9 else f"P/R/H DIFFER by {worst:.2e}"


@dataclass(frozen=True)
class EvalBench:
    rows: list[BenchRow]
    notes: list[str]
    data: str


def _compile_ocrdet() -> None:
    """ocrdet's modules compiled to bytecode, as an install does, so that no timed process compiles them (the
    references import ocrdet too); a read-only install already has its bytecode."""
    import compileall

    compileall.compile_dir(Path(ocrdet.__file__).parent, quiet=2)


def bench_eval(gt_path: str | Path | None = None, repeats: int = 3, reference_repeats: int = 1) -> EvalBench:
    """Time ``ocrdet evaluate`` (IoU and CLEval) as whole processes against the official IoU algorithm on
    Polygon3 and PyPI cleval (when the dev extras are installed), on ``gt_path`` (default: 404 synthetic
    receipts) against a perturbed copy of it; then the in-process matching and post-processing. The notes give
    the start-up floor every process pays (``python -c "import numpy"``) and the ratios after it."""
    _compile_ocrdet()
    with tempfile.TemporaryDirectory() as tmp:
        if gt_path is None:
            gt_path = synthetic_receipts(Path(tmp), "val", SYNTH_RECEIPTS) / "jsons" / "val.json"
        gts = read_annotation_polygons(gt_path)
        rng = np.random.default_rng(0)
        dets = [perturb(polys, rng) for polys, _, _ in gts.values()]
        pred_path = Path(tmp) / "pred.csv"
        write_predictions(dict(zip(gts, dets, strict=True)), pred_path)
        gt, pred = str(gt_path), str(pred_path)
        n, words = len(gts), sum(len(g[0]) for g in gts.values())
        rows, notes = [], [f"{gt_path}: {n} images, {words} words; detections: perturbed ground truth"]
        have = {name: importlib.util.find_spec(name) is not None for name in ("Polygon", "cleval")}
        floor: list[float] = []
        for metric, module, extra, label in (
            ("hmean", "ocrdet.eval.iou_hmean_reference", "Polygon", "IoU: official algorithm (Polygon3) vs ocrdet"),
            ("cleval", "ocrdet.eval.cleval_reference", "cleval", "CLEval: PyPI cleval vs ocrdet"),
        ):
            ours_s, ours = _timed(
                _process(["ocrdet.cli", "evaluate", gt, pred, "--metric", metric, "--json", "-"]), repeats, floor
            )
            if have[extra]:
                ref_s, ref = _timed(_process([module, gt, pred]), reference_repeats, floor)
                notes.append(f"{label}: {_same(ours['summary'], ref)}")
            else:
                ref_s = math.nan
                notes.append(f"{label}: reference not installed (pip install -e '.[dev]')")
            rows.append(BenchRow(f"{label}, whole process", 1000 * ref_s, 1000 * ours_s))
        floor_ms = 1000 * min(floor)
        after = [
            f"{r.stage.split(':')[0]} {r.baseline_ms - floor_ms:.0f} vs {r.ours_ms - floor_ms:.0f} ms"
            f" ({(r.baseline_ms - floor_ms) / (r.ours_ms - floor_ms):.1f}x)"
            for r in rows
            if not math.isnan(r.baseline_ms) and r.ours_ms > floor_ms
        ]
        notes.append(
            f"start-up floor (python -c 'import numpy', best of {len(floor)} between the runs) {floor_ms:.0f} ms"
        )
        notes.append(f"after the start-up floor: {', '.join(after)}")
        images = [(polys, ignore, det) for (polys, ignore, _), det in zip(gts.values(), dets, strict=True)]
        bulk_s = _best(lambda: match_images(images), repeats)
        ref_s = _best(lambda: [reference_match_image(*image) for image in images], 1) if have["Polygon"] else math.nan
        rows.append(BenchRow("IoU matching in process (per-pair Polygon3 vs bulk)", 1000 * ref_s, 1000 * bulk_s))
        cleval_images = [(p, i, t, d) for (p, i, t), d in zip(gts.values(), dets, strict=True)]
        cleval_s = _best(lambda: CLEval().update_images(cleval_images), repeats)
        rows.append(BenchRow("CLEval in process (ocrdet only, bulk)", math.nan, 1000 * cleval_s))
    prob = synthetic_map()
    config = PostprocessConfig()
    polys, _ = postprocess(prob, config)
    times = []
    for _ in range(100):
        start = time.perf_counter()
        postprocess(prob, config)
        times.append(time.perf_counter() - start)
    rows.append(
        BenchRow(f"postprocess 640x640, {len(polys)} boxes (median)", math.nan, 1000 * statistics.median(times))
    )
    notes.append(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return EvalBench(rows, notes, str(gt_path))


def format_bench(result: EvalBench) -> str:
    """The table (ms per run) and the notes: equality of the figures, data, machine load."""
    return format_table(result.rows, unit="run") + "\n" + "\n".join(result.notes)


def bench_json(result: EvalBench) -> dict:
    """The bench as JSON: rows (ms, speedup), notes, data, ocrdet version."""

    return {
        "bench": "eval",
        "ocrdet_version": ocrdet.__version__,
        "data": result.data,
        "rows": [
            {
                "stage": r.stage,
                "reference_ms": None if math.isnan(r.baseline_ms) else r.baseline_ms,
                "ours_ms": r.ours_ms,
                "speedup": None if math.isnan(r.speedup) else r.speedup,
            }
            for r in result.rows
        ],
        "notes": result.notes,
    }
