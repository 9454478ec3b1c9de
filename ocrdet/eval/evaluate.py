"""File-level evaluation (ground-truth JSON vs. prediction CSV/JSON) and the background evaluator of validation.

Both score images through ``score_images``: the IoU H-mean (``"hmean"``, ICDAR 2015 rules, see
``iou_hmean``) or CLEval (``"cleval"``). Scores are per-image counts that add up, so work can be split
over processes and DDP ranks and the metric is computed once, from the sum.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from ocrdet.data.io.errors import AnnotationError
from ocrdet.eval.files import GroundTruth, MetricInputWarning, read_detections, read_ground_truth
from ocrdet.eval.files import warn_self_intersecting as warn_self_intersecting
from ocrdet.eval.iou_hmean import AREA_PRECISION_THRESHOLD, IOU_THRESHOLD, ImageCounts, match_pairs
from ocrdet.eval.metrics import METRICS, metric_class

if TYPE_CHECKING:  # the process pool, CLEval (shapely) and the model load only where they are used
    from concurrent.futures import Future, ProcessPoolExecutor

    from ocrdet.data.io.format import Annotations
    from ocrdet.eval.cleval import CLEvalCounts
    from ocrdet.model.postprocess import PostprocessConfig

Counts: TypeAlias = "ImageCounts | CLEvalCounts"
MAX_PENDING_PER_WORKER = 2
"""Batches the background evaluator lets wait per worker before ``submit`` blocks (bounds memory)."""


def check_metric(metric: str) -> None:
    """Refuse a metric name that is not registered in ``ocrdet.eval.metrics.METRICS``."""
    metric_class(metric)


def score_images(metric: str, gts: Sequence[GroundTruth], dets: Sequence[Sequence[np.ndarray]]) -> list[Counts]:
    """Per-image counts of ``metric`` for ground truth ``gts`` and detections ``dets`` (same order)."""
    return metric_class(metric)().update_images(
        [(polys, ignore, texts, det) for (polys, ignore, texts), det in zip(gts, dets, strict=True)]
    )


def image_figures(counts: Counts) -> dict[str, float]:
    """One image's precision / recall / hmean (+ counts) by the metric's per-image rule."""
    return next(c for c in map(metric_class, METRICS) if isinstance(counts, c.Counts)).image_figures(counts)


def match_states(
    gt_polys: Sequence[np.ndarray], gt_ignore: np.ndarray, det_polys: Sequence[np.ndarray]
) -> tuple[list[str], list[str]]:
    """One image's ground-truth states (``matched`` / ``missed`` / ``ignore``) and detection states
    (``matched`` / ``false_positive`` / ``ignore``), in polygon order, from the IoU metric's own pairs."""
    match = match_pairs(gt_polys, gt_ignore, det_polys)
    gt = ["ignore" if flag else "missed" for flag in gt_ignore]
    det = ["ignore" if flag else "false_positive" for flag in match.det_dont_care]
    for g, d in zip(match.gt.tolist(), match.det.tolist(), strict=True):
        gt[g] = det[d] = "matched"
    return gt, det


def total(counts: Sequence[Counts], metric: str) -> Counts:
    """Sum of per-image counts (the empty sum of ``metric``'s type when there are none)."""
    return sum(counts, metric_class(metric).Counts())


def metric_settings(metric: str) -> dict[str, float]:
    """The thresholds a metric ran with, for the JSON report."""
    if metric == "hmean":
        return {"iou_threshold": IOU_THRESHOLD, "area_precision_threshold": AREA_PRECISION_THRESHOLD}
    from dataclasses import asdict

    from ocrdet.eval.cleval import CLEvalConfig

    return asdict(CLEvalConfig())


@dataclass(frozen=True)
class EvaluationResult:
    metric: str
    summary: dict[str, float]
    """Data-set figures: precision, recall, hmean and counts (CLEval adds mean_* per-image averages)."""
    per_image: list[tuple[str, dict[str, float]]]
    """(file name, figures) in ground-truth order."""
    sources: dict[str, str] = field(default_factory=dict)
    """The files evaluated (``gt``, ``predictions``)."""

    def to_json(self) -> dict[str, Any]:
        """Everything at full precision: settings, version, data-set figures (both averagings for CLEval),
        counts and per-image figures."""
        from ocrdet import __version__

        return {
            "ocrdet_version": __version__,
            "metric": self.metric,
            "settings": metric_settings(self.metric),
            **self.sources,
            "images": len(self.per_image),
            "summary": self.summary,
            "per_image": [{"image": name, **figures} for name, figures in self.per_image],
        }


def ground_truth(annotations: Annotations) -> dict[str, GroundTruth]:
    """File name -> (float64 polygons, ignore flags, transcriptions) of every annotated image."""
    out = {}
    for name, image in annotations.images.items():
        words = list(image.words.values())
        polys = [np.array(w.points, dtype=np.float64).reshape(-1, 2) for w in words]
        out[name] = (polys, np.array([w.illegibility for w in words], dtype=bool), [w.transcription for w in words])
    return out


def align_predictions(
    gts: dict[str, GroundTruth], predictions: dict[str, list[np.ndarray]], source: str
) -> list[list[np.ndarray]]:
    """Detections in ground-truth order; an image without predictions has none; unknown names are an error.
    A file without any image of the ground truth gets a MetricInputWarning (wrong file or names?)."""
    unknown = [name for name in predictions if name not in gts]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise AnnotationError(f"{source}: predictions for images that are not in the ground truth: {shown}")
    if gts and not predictions:
        warnings.warn(
            f"{source}: no predictions for any of the {len(gts)} ground-truth images; every image scores as missed",
            MetricInputWarning,
            stacklevel=2,
        )
    return [list(predictions.get(name, [])) for name in gts]


def chunks(n: int, parts: int) -> list[slice]:
    """Up to ``parts`` contiguous, non-empty slices of about equal size covering ``range(n)``."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def evaluate_files(
    gt_path: str | Path, pred_path: str | Path, metric: str = "hmean", workers: int = 0
) -> EvaluationResult:
    """Evaluate a prediction file (.csv / .json) against a ground-truth JSON.

    ``workers`` > 0 splits the images over that many processes; 0 scores them in this process (for the
    IoU metric that is faster up to thousands of images: the geometry is already bulk).
    """
    check_metric(metric)
    gts, word_ids = read_ground_truth(gt_path)
    warn_self_intersecting(gts, str(gt_path), word_ids)
    dets = align_predictions(gts, read_detections(pred_path), str(pred_path))
    gt_list = list(gts.values())
    if workers > 0 and len(gt_list) > 1:
        parts = chunks(len(gt_list), workers)
        with process_pool(min(workers, len(parts))) as pool:
            futures = [pool.submit(score_images, metric, gt_list[s], dets[s]) for s in parts]
            per_image = [c for f in futures for c in f.result()]
    else:
        per_image = score_images(metric, gt_list, dets)
    figures = metric_class(metric).image_figures
    return EvaluationResult(
        metric=metric,
        summary=total(per_image, metric).metrics(),
        per_image=[(name, figures(c)) for name, c in zip(gts, per_image, strict=True)],
        sources={"gt": str(gt_path), "predictions": str(pred_path)},
    )


def format_table(result: EvaluationResult, worst: int = 10) -> str:
    """The data-set figures, then the ``worst`` images by H-mean, as an aligned text table."""
    s = result.summary
    lines = [f"metric: {result.metric}   images: {len(result.per_image)}", ""]
    lines.append(f"{'':<22}{'precision':>10}{'recall':>10}{'hmean':>10}")
    lines.append(f"{'data set':<22}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['hmean']:>10.4f}")
    if "mean_hmean" in s:
        lines.append(
            f"{'mean over images':<22}{s['mean_precision']:>10.4f}{s['mean_recall']:>10.4f}{s['mean_hmean']:>10.4f}"
        )
    counts = {k: v for k, v in s.items() if k not in ("precision", "recall", "hmean") and not k.startswith("mean_")}
    lines.append("   ".join(f"{k}: {v}" for k, v in counts.items()))
    if worst > 0 and result.per_image:
        ranked = sorted(result.per_image, key=lambda item: item[1]["hmean"])[:worst]
        width = max(22, max(len(name) for name, _ in ranked) + 2)
        lines += ["", f"worst {len(ranked)} images", f"{'image':<{width}}{'precision':>10}{'recall':>10}{'hmean':>10}"]
        for name, f in ranked:
            lines.append(f"{name:<{width}}{f['precision']:>10.4f}{f['recall']:>10.4f}{f['hmean']:>10.4f}")
    return "\n".join(lines)


def _init_worker() -> None:
    """Workers ignore Ctrl-C, which a terminal sends to them too: the main process decides what happens
    (in training ``ocrdet.train.checkpointing.StopOnSignal`` saves a checkpoint) and shuts the pool down."""
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes started with "spawn": safe beside CUDA and threads; one OpenCV thread each."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)


def stored_polygons(polygons: Sequence[np.ndarray], to_map: np.ndarray) -> list[np.ndarray]:
    """Map-frame polygons in an image's stored frame as ``ocrdet predict`` writes them: float32, then rounded to
    the integers of the competition CSV. ``to_map`` (3, 3): stored frame -> map frame."""
    back = np.linalg.inv(to_map)
    return [
        np.round((np.asarray(p, dtype=np.float64) @ back[:2, :2].T + back[:2, 2]).astype(np.float32)).astype(np.float64)
        for p in polygons
    ]


def process_batch(
    prob_maps: np.ndarray,
    scales: Sequence[tuple[float, float]],
    gts: Sequence[GroundTruth],
    config: PostprocessConfig,
    metric: str,
    to_map: Sequence[np.ndarray] | None = None,
) -> list[Counts]:
    """Post-process (B, H, W) maps and score them against ``gts``: per-image counts. With ``to_map`` (stored
    frame -> map frame per image) the detections are first put in the stored frame and rounded as the CSV is."""
    from ocrdet.model.postprocess import postprocess

    dets = [postprocess(prob, config, scale)[0] for prob, scale in zip(prob_maps, scales, strict=True)]
    if to_map is not None:
        dets = [stored_polygons(d, m) for d, m in zip(dets, to_map, strict=True)]
    return score_images(metric, gts, dets)


class BackgroundEvaluator:
    """Validation metric computed beside the model: ``submit`` hands a batch of probability maps to worker
    processes (post-processing + matching) and returns at once; ``counts`` / ``compute`` at the epoch's end
    wait for the workers, sum the per-image counts once and cache the result until ``reset``.

    ``workers`` = 0 runs everything inline in ``submit``. At most ``MAX_PENDING_PER_WORKER * workers``
    batches wait at a time; beyond that ``submit`` blocks until the oldest is done.
    """

    def __init__(self, config: PostprocessConfig | None = None, workers: int = 1, metric: str = "hmean") -> None:
        from ocrdet.model.postprocess import PostprocessConfig

        check_metric(metric)
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.config = config if config is not None else PostprocessConfig()
        self.workers = workers
        self.metric = metric
        self._pool: ProcessPoolExecutor | None = None
        self._pending: list[Future] = []
        self._done: list[Counts] = []
        self._total: Counts | None = None
        self._metrics: dict[str, float] | None = None

    def submit(
        self,
        prob_maps: np.ndarray,
        gt_polys: Sequence[Sequence[np.ndarray]],
        gt_ignore: Sequence[np.ndarray],
        scales: Sequence[tuple[float, float]] | None = None,
        gt_texts: Sequence[Sequence[str | None] | None] | None = None,
        to_map: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Queue one batch. ``prob_maps``: float32 or float16 numpy (B, H, W) in [0, 1]; per image: GT
        polygons (N, 2) and ignore flags in original pixels, ``scales`` (sx, sy) = map size / original
        size (default 1: GT in map pixels), CLEval transcriptions (default none: pseudo counts)."""
        if self._total is not None:
            raise RuntimeError("the metric of this epoch was already computed; call reset() before submitting again")
        maps = np.asarray(prob_maps)
        if maps.ndim != 3 or maps.dtype not in (np.float16, np.float32):
            raise ValueError(f"prob_maps must be a float16/float32 (B, H, W) array, got {maps.dtype} {maps.shape}")
        b = len(maps)
        scales = [(1.0, 1.0)] * b if scales is None else [tuple(map(float, s)) for s in scales]
        texts = [None] * b if gt_texts is None else list(gt_texts)
        if not (len(gt_polys) == len(gt_ignore) == len(scales) == len(texts) == b):
            raise ValueError(
                f"{b} maps but {len(gt_polys)} polygon lists, {len(gt_ignore)} ignore arrays, "
                f"{len(scales)} scales, {len(texts)} transcription lists"
            )
        gts = [(list(p), np.asarray(i, dtype=bool), t) for p, i, t in zip(gt_polys, gt_ignore, texts, strict=True)]
        if self.workers == 0:
            self._done += process_batch(maps, scales, gts, self.config, self.metric, to_map)
            return
        if self._pool is None:
            self._pool = process_pool(self.workers)
        while len(self._pending) >= MAX_PENDING_PER_WORKER * self.workers:
            self._done += self._pending.pop(0).result()
        self._pending.append(self._pool.submit(process_batch, maps, scales, gts, self.config, self.metric, to_map))

    def submit_validation(
        self, prob: np.ndarray, batch: Mapping[str, Any], ground_truth: Mapping[str, GroundTruth] | None
    ) -> bool:
        """Queue one validation batch (``prob`` float32 (B, H, W), ``batch`` the loader's: ``name``, ``matrix``,
        network-frame ``polygons`` and ``ignore``) the one way training, ``bench val`` and predict + evaluate agree
        on: with ``ground_truth`` holding every name (the annotation file's), detections go to the stored frame
        with the CSV's rounding and are scored against the file's polygons and transcriptions. Otherwise (streamed
        shards have no annotation file) they are scored in the network frame against the batch's polygons, which
        differs from ``evaluate``. Returns whether the batch was scored in the stored frame."""
        names = list(batch["name"])
        if ground_truth is not None and all(name in ground_truth for name in names):
            gts = [ground_truth[name] for name in names]
            self.submit(
                np.asarray(prob, dtype=np.float32),
                [g[0] for g in gts],
                [g[1] for g in gts],
                gt_texts=[g[2] for g in gts],
                to_map=[np.asarray(m, dtype=np.float64) for m in batch["matrix"]],
            )
            return True
        self.submit(np.asarray(prob, dtype=np.float16), batch["polygons"], batch["ignore"])
        return False

    def counts(self) -> Counts:
        """Summed counts of every image submitted since ``reset`` (waits for the workers; computed once)."""
        if self._total is None:
            for future in self._pending:
                self._done += future.result()
            self._pending = []
            self._total = total(self._done, self.metric)
        return self._total

    def compute(self) -> dict[str, float]:
        """Data-set figures of this epoch, from ``counts``; the same dict on every call until ``reset``."""
        if self._metrics is None:
            self._metrics = self.counts().metrics()
        return self._metrics

    def per_image(self) -> list[Counts]:
        """Counts per image in submission order (after ``counts``/``compute``)."""
        self.counts()
        return list(self._done)

    def reset(self) -> None:
        """Forget this epoch; batches still queued are cancelled."""
        for future in self._pending:
            future.cancel()
        self._pending, self._done, self._total, self._metrics = [], [], None, None

    def close(self) -> None:
        """Shut the worker processes down."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._pending = []
