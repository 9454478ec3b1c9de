"""Post-processing threshold sweep over saved probability maps: ``ocrdet evaluate --sweep box_thresh=0.3:0.9:0.05``.

The maps are those ``ocrdet predict --save-maps`` wrote (``ocrdet.data.io.saved_maps``).

Reuse: the stages of ``postprocess`` depend on different settings, so a sweep of ``box_thresh`` finds,
scores and unclips the candidates once per map and only filters scores per value; a sweep of
``unclip_ratio`` finds and scores them once; ``thresh`` redoes everything. Each value's detections are
exactly what ``postprocess`` gives with that setting (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ocrdet.data.io.format import AnnotationError
from ocrdet.data.io.saved_maps import SavedMaps, load_maps
from ocrdet.eval.evaluate import (
    Counts,
    GroundTruth,
    check_metric,
    chunks,
    process_pool,
    score_images,
    total,
)
from ocrdet.eval.files import read_annotation_polygons
from ocrdet.model.postprocess import PostprocessConfig, expand_candidates, find_candidates, postprocess

SWEEP_PARAMS = ("box_thresh", "thresh", "unclip_ratio")


def parse_sweep(spec: str) -> tuple[str, np.ndarray]:
    """``"box_thresh=0.3:0.9:0.05"`` -> ("box_thresh", [0.3, 0.35, ..., 0.9]) (the stop is included)."""
    try:
        param, grid = spec.split("=")
        start, stop, step = (float(v) for v in grid.split(":"))
    except ValueError:
        raise ValueError(f"sweep {spec!r}: expected PARAM=START:STOP:STEP, e.g. box_thresh=0.3:0.9:0.05") from None
    param = param.strip()
    if param not in SWEEP_PARAMS:
        raise ValueError(f"sweep {spec!r}: PARAM must be one of {', '.join(SWEEP_PARAMS)}")
    if step <= 0 or stop < start:
        raise ValueError(f"sweep {spec!r}: need STEP > 0 and STOP >= START")
    count = math.floor((stop - start) / step + 1e-9) + 1
    return param, np.round(start + step * np.arange(count), 10)


def sweep_image(
    prob: np.ndarray, scale: tuple[float, float], param: str, values: Sequence[float], config: PostprocessConfig
) -> list[list[np.ndarray]]:
    """Detections of one map for each value of ``param`` (the other settings from ``config``), reusing stages."""
    shape = prob.shape
    if param == "box_thresh":
        candidates = find_candidates(prob, config.thresh, config.max_candidates, min_score=min(values))
        polys, scores = expand_candidates(candidates, shape, config.unclip_ratio, config.min_size, scale)
        return [[p for p, s in zip(polys, scores, strict=True) if s >= v] for v in values]
    if param == "unclip_ratio":
        candidates = find_candidates(prob, config.thresh, config.max_candidates, min_score=config.box_thresh)
        return [expand_candidates(candidates, shape, v, config.min_size, scale)[0] for v in values]
    return [postprocess(prob, replace(config, **{param: v}), scale)[0] for v in values]


def _sweep_chunk(
    maps: Sequence[np.ndarray],
    scales: np.ndarray,
    gts: Sequence[GroundTruth],
    param: str,
    values: Sequence[float],
    config: PostprocessConfig,
    metric: str,
) -> list[Counts]:
    """Summed counts of these images, one per value."""
    per_image = [sweep_image(m, tuple(s), param, values, config) for m, s in zip(maps, scales, strict=True)]
    return [total(score_images(metric, gts, [dets[k] for dets in per_image]), metric) for k in range(len(values))]


@dataclass(frozen=True)
class SweepResult:
    param: str
    values: list[float]
    metrics: list[dict[str, float]]
    """Data-set figures per value (see ``ImageCounts.metrics`` / ``CLEvalCounts.metrics``)."""
    metric: str

    @property
    def best(self) -> int:
        """Index of the highest H-mean (the first of equals)."""
        return int(np.argmax([m["hmean"] for m in self.metrics]))


def sweep(
    saved: SavedMaps,
    gts: dict[str, GroundTruth],
    param: str,
    values: Sequence[float],
    config: PostprocessConfig | None = None,
    metric: str = "hmean",
    workers: int = 0,
) -> SweepResult:
    """Evaluate every value of ``param`` on the saved maps against ``gts`` (images without a map: no detections)."""
    check_metric(metric)
    if param not in SWEEP_PARAMS:
        raise ValueError(f"cannot sweep {param!r}; choose one of {', '.join(SWEEP_PARAMS)}")
    if len(values) == 0:
        raise ValueError("the sweep needs at least one value")
    config = config if config is not None else PostprocessConfig()
    unknown = [n for n in saved.names if n not in gts]
    if unknown:
        raise AnnotationError(f"saved maps of images that are not in the ground truth: {unknown[:5]}")
    mapped = [gts[n] for n in saved.names]
    values = [float(v) for v in values]
    parts = chunks(len(saved.maps), max(workers, 1))
    jobs = [(saved.maps[s], saved.scales[s], mapped[s], param, values, config, metric) for s in parts]
    if workers > 0 and len(parts) > 1:
        with process_pool(len(parts)) as pool:
            results = [f.result() for f in [pool.submit(_sweep_chunk, *job) for job in jobs]]
    else:
        results = [_sweep_chunk(*job) for job in jobs]
    have = set(saved.names)
    missing = [gt for name, gt in gts.items() if name not in have]
    base = total(score_images(metric, missing, [[] for _ in missing]), metric)
    totals = [sum((result[k] for result in results), base) for k in range(len(values))]
    return SweepResult(param, values, [t.metrics() for t in totals], metric)


def format_sweep(result: SweepResult) -> str:
    """Aligned table of precision / recall / hmean per value, the best one marked."""
    lines = [f"{result.param:>12}{'precision':>11}{'recall':>9}{'hmean':>9}"]
    for i, (v, m) in enumerate(zip(result.values, result.metrics, strict=True)):
        mark = "  <- best" if i == result.best else ""
        lines.append(f"{v:>12.4g}{m['precision']:>11.4f}{m['recall']:>9.4f}{m['hmean']:>9.4f}{mark}")
    best = result.metrics[result.best]
    lines.append(f"best {result.param} = {result.values[result.best]:.4g} (hmean {best['hmean']:.4f}, {result.metric})")
    return "\n".join(lines)


def plot_sweep(result: SweepResult, path: str | Path) -> None:
    """PNG of precision, recall and H-mean against the swept value, the best one marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("precision", "recall", "hmean"):
        ax.plot(result.values, [m[key] for m in result.metrics], marker="o", label=key)
    best = result.best
    ax.axvline(result.values[best], color="grey", linestyle="--", label=f"best {result.values[best]:.4g}")
    ax.set_xlabel(result.param)
    ax.set_ylabel(result.metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_sweep(
    gt_path: str | Path,
    maps_path: str | Path,
    spec: str,
    plot_path: str | Path,
    config: PostprocessConfig | None = None,
    metric: str = "hmean",
    workers: int = 0,
) -> SweepResult:
    """The CLI's sweep: parse ``spec``, evaluate, save the plot; print ``format_sweep(result)`` yourself."""
    param, values = parse_sweep(spec)
    result = sweep(load_maps(maps_path), read_annotation_polygons(gt_path), param, values, config, metric, workers)
    plot_sweep(result, plot_path)
    return result
