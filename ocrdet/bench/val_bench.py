"""``ocrdet bench val``: one full validation epoch (data, model, post-processing, metric), the baseline against
ours, in one process on the same images with the same weights.

Baseline (as the original receipt project validated): Pillow decodes the full image with EXIF applied at every
step; albumentations resizes the long side to ``size`` (``INTER_LINEAR``), pads bottom/right and normalizes to
float32 on the CPU; the collate draws the textbook DB maps (``targets_reference.py``) and stacks float tensors;
the model runs on the normalized images with both heads (probability and threshold) for the validation loss;
each map is post-processed in turn in the main process; at the end the detections are matched with the official
script's per-pair loop (``ocrdet.eval.iou_hmean_reference``).

Ours (what ``DBNetModule`` validates with): the prepared validation cache holds the letterboxed uint8 image and
its final maps (prepared once beforehand: reported on its own row, not in the totals); ``DetectionDataset`` +
``collate`` give uint8 batches, normalized in the model; ``validation_step`` computes no loss (in eval mode the
head skips the threshold branch), only the probability map, which it hands to ``BackgroundEvaluator``: a worker
process post-processes and matches it while the model runs the next batch, so the "postprocess + metric" row is
only the time the main process waits for it (to queue batches, and for the last ones at the end).

The baseline scores in the letterboxed network frame, as the original project did; ours scores as training
does (``BackgroundEvaluator.submit_validation``): detections in the stored frame, rounded as the prediction CSV,
against the annotation file, so its H-mean is the one ``ocrdet predict`` + ``ocrdet evaluate`` give for the
same weights. The two H-means therefore differ by the frame and by what each pipeline computes differently: the
resize (albumentations ``INTER_LINEAR`` from the full image against predict's decode, DCT-scaled to no less
than ``size``, then ``INTER_AREA``) and, with ``maps="target"``, the textbook against the vectorized DB maps.

A randomly initialised model (no checkpoint) predicts noise: post-processing would find next to nothing and the
metric would have nothing to match, so neither would cost what it costs on a trained model. Without a checkpoint
the post-processing therefore reads, by default, each pipeline's ground-truth probability map (the baseline's
drawn in its collate, ours from the cache), which has as many text regions as a trained model's map; the model
still runs and is timed.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

from ocrdet.bench.common import (
    PREPARE_ROW,
    BaselineItem,
    BenchRow,
    Timer,
    apply_with_polygons,
    baseline_decode,
    baseline_items,
    device,
    format_table,
    plot_rows,
    stage_rows,
    synchronize,
    synthetic_receipts,
    timed_prepare,
    to_device,
    warm_up_device,
)
from ocrdet.data.config import EVAL_SIZE, CacheConfig
from ocrdet.data.io.format import split_paths
from ocrdet.data.loaders.native import DetectionDataset, collate
from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.data.transforms.maps import MAP_KEYS
from ocrdet.data.transforms.targets import TargetConfig
from ocrdet.data.transforms.targets_reference import reference_db_targets
from ocrdet.eval.evaluate import BackgroundEvaluator, GroundTruth
from ocrdet.eval.files import read_annotation_polygons
from ocrdet.eval.iou_hmean import ImageCounts
from ocrdet.eval.iou_hmean_reference import reference_match_image
from ocrdet.infer import load_checkpoint
from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.model.head import fp32_sigmoid, step_function
from ocrdet.model.loss import DBLoss
from ocrdet.model.postprocess import PostprocessConfig, postprocess
from ocrdet.parallel import usable_cores
from ocrdet.train.bottleneck import DATA, VAL_METRIC, VAL_MODEL, RunFacts, bottleneck_report

STAGES = ("data", "model", "postprocess + metric")
MAP_SOURCES = ("auto", "model", "target")
"""What is post-processed: the model's probability map, the ground-truth one, or auto (model with a checkpoint)."""
MODEL_SEED = 0
EVAL_WORKERS = 1
"""Worker processes of our evaluator: the default of ``ocrdet train`` (``TrainConfig.eval_workers``)."""


@dataclass(frozen=True)
class EpochRun:
    """Seconds per stage over ``images`` images, the epoch's metric figures (precision, recall, hmean, counts)
    and its mean validation loss (None where the pipeline computes none)."""

    seconds: dict[str, float]
    images: int
    metrics: dict[str, float]
    loss: float | None


@dataclass(frozen=True)
class ValBench:
    """The table's rows and what each pipeline scored; ``maps``: what was post-processed (model or target)."""

    rows: list[BenchRow]
    baseline: EpochRun
    ours: EpochRun
    maps: str


@dataclass(frozen=True)
class _Model:
    """The network, the DB loss (the baseline's validation loss) and the post-processing settings, on one device."""

    net: DBNet
    loss: DBLoss
    postprocess: PostprocessConfig
    device: torch.device


def baseline_val_transform(size: int) -> A.Compose:
    """The baseline's validation chain: uint8 (H, W, 3) + xy keypoints -> float32 (size, size, 3), top-left."""
    return A.Compose(
        [
            A.LongestMaxSize(max_size=size),
            A.PadIfNeeded(size, size, position="top_left", border_mode=cv2.BORDER_CONSTANT),
            A.Normalize(),
        ],
        keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
    )


def _batches(count: int, batch_size: int) -> Iterator[range]:
    for start in range(0, count, batch_size):
        yield range(start, min(start + batch_size, count))


def _baseline_collate(
    samples: Sequence[tuple[np.ndarray, list[np.ndarray], np.ndarray]], size: int
) -> dict[str, torch.Tensor]:
    """Textbook DB maps per (image, polygons, ignore) sample, then the default collate of float tensors."""
    items = []
    for image, polygons, ignore in samples:
        maps = reference_db_targets(polygons, ignore, size, size)
        items.append(
            {"image": torch.from_numpy(image.transpose(2, 0, 1)), **{k: torch.from_numpy(maps[k]) for k in MAP_KEYS}}
        )
    return default_collate(items)


def baseline_forward(net: DBNet, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Both heads on float32 (B, 3, H, W) images the CPU has already normalized, as the baseline ran validation
    (the maps its loss needs; ``DBHead`` in eval mode computes the probability map alone)."""
    features = net.neck(net.backbone(images))
    prob, thresh = fp32_sigmoid(net.head.prob(features)), fp32_sigmoid(net.head.thresh(features))
    return {"prob": prob, "thresh": thresh, "binary": step_function(prob, thresh, net.head.k)}


def run_baseline(
    items: Sequence[BaselineItem], model: _Model, size: int, batch_size: int, use_target: bool
) -> EpochRun:
    """The baseline validation epoch over ``items`` in this process, timed per stage."""
    transform, timer = baseline_val_transform(size), Timer(STAGES)
    gts, dets, losses = [], [], []
    for chunk in _batches(len(items), batch_size):
        with timer("data"):
            samples = []
            for k in chunk:
                image, polygons = baseline_decode(items[k])
                samples.append((*apply_with_polygons(transform, image, polygons), items[k].ignore))
            batch = _baseline_collate(samples, size)
            tensors = to_device(batch, model.device, pin=False)
        with timer("model"):
            outputs = baseline_forward(model.net, tensors["image"])
            losses.append(model.loss(outputs, tensors)["loss"].item())
            prob = outputs["prob"][:, 0].float().cpu().numpy()
        with timer("postprocess + metric"):
            maps = batch["prob"].numpy() if use_target else prob
            dets += [postprocess(m, model.postprocess)[0] for m in maps]
        gts += [(polygons, ignore) for _, polygons, ignore in samples]
    with timer("postprocess + metric"):
        counts = sum((reference_match_image(p, i, d) for (p, i), d in zip(gts, dets, strict=True)), ImageCounts())
    return EpochRun(timer.seconds, len(items), counts.metrics(), float(np.mean(losses)))


def run_ours(
    dataset: DetectionDataset,
    indices: Sequence[int],
    model: _Model,
    batch_size: int,
    evaluator: BackgroundEvaluator,
    use_target: bool,
    ground_truth: dict[str, GroundTruth],
) -> EpochRun:
    """Our validation epoch over ``dataset[indices]`` in this process, timed per stage (``evaluator`` is reset),
    scored as training scores it (``BackgroundEvaluator.submit_validation``: stored frame, CSV rounding)."""
    timer = Timer(STAGES)
    evaluator.reset()
    for chunk in _batches(len(indices), batch_size):
        with timer("data"):
            batch = collate([dataset[indices[k]] for k in chunk])
            tensors = to_device(batch, model.device, pin=model.device.type == "cuda")
        with timer("model"):
            prob = model.net(tensors["image"])["prob"][:, 0].float().cpu().numpy()
        with timer("postprocess + metric"):
            maps = batch["prob"].float().numpy() if use_target else prob
            evaluator.submit_validation(maps, batch, ground_truth)
    with timer("postprocess + metric"):
        metrics = evaluator.compute()
    return EpochRun(timer.seconds, len(indices), metrics, None)


def load_model(checkpoint: Path | None) -> _Model:
    """The checkpoint's model and post-processing settings, or a seeded random default DBNet; on the GPU if any."""
    if checkpoint is not None:
        net, post, _ = load_checkpoint(checkpoint)
    else:
        torch.manual_seed(MODEL_SEED)
        net, post = DBNet(ModelConfig()).eval(), PostprocessConfig()
    target = device() or torch.device("cpu")
    return _Model(net.to(target), DBLoss().to(target), post, target)


def _warm_up(model: _Model, evaluator: BackgroundEvaluator, size: int, batch_size: int) -> None:
    """Run both forward paths once and start the evaluator's worker, so that no one-off start-up is timed
    (in training the worker lives across epochs)."""
    images = torch.zeros((batch_size, size, size, 3), dtype=torch.uint8, device=model.device)
    model.net(images)
    baseline_forward(model.net, model.net.normalize(images).contiguous())
    synchronize()
    evaluator.submit(np.zeros((1, size, size), np.float32), [[]], [np.zeros(0, bool)])
    evaluator.compute()
    evaluator.reset()


def _choose_maps(maps: str, checkpoint: Path | None) -> str:
    if maps not in MAP_SOURCES:
        raise ValueError(f"maps must be one of {', '.join(MAP_SOURCES)}, got {maps!r}")
    if maps == "auto":
        return "model" if checkpoint is not None else "target"
    return maps


@torch.inference_mode()
def _compare(
    root: Path, split: str, n: int, size: int, batch_size: int, cache: Path, checkpoint: Path | None, maps: str
) -> ValBench:
    warm_up_device()
    items = baseline_items(root, split)
    indices = [k % len(items) for k in range(n)]
    source, prepare_ms = timed_prepare(root, split, cache, CacheConfig(eval_size=size), with_targets=True)
    dataset = DetectionDataset(source, False, AugmentConfig(size=size), TargetConfig(), eval_size=size)
    model, use_target = load_model(checkpoint), maps == "target"
    evaluator = BackgroundEvaluator(model.postprocess, workers=EVAL_WORKERS)
    try:
        _warm_up(model, evaluator, size, batch_size)
        baseline = run_baseline([items[i] for i in indices], model, size, batch_size, use_target)
        ground_truth = read_annotation_polygons(split_paths(root, split)[1])
        ours = run_ours(dataset, indices, model, batch_size, evaluator, use_target, ground_truth)
    finally:
        evaluator.close()
    rows = stage_rows(baseline.seconds, baseline.images, ours.seconds, ours.images, "total")
    return ValBench([*rows, BenchRow(PREPARE_ROW, math.nan, prepare_ms)], baseline, ours, maps)


def bench_val(
    root: Path | None,
    split: str = "val",
    n: int = 32,
    size: int = EVAL_SIZE,
    batch_size: int = 8,
    plot: Path | None = None,
    checkpoint: Path | None = None,
    maps: str = "auto",
) -> ValBench:
    """Time a validation epoch of ``n`` images (cycling over the split's) at ``size``, baseline against ours.

    root: a data set ROOT, or None for ``n`` synthetic receipts generated into a temporary folder (split "val").
    checkpoint: the weights and post-processing settings both pipelines use (default: a seeded random DBNet of
    the default ``ModelConfig``); its training input size is not used, ``size`` is.
    maps: what is post-processed, see ``MAP_SOURCES`` and the module's docstring. The validation cache is
    prepared in a temporary folder first. ``format_result`` prints the result; ``plot`` also draws its rows.
    """
    chosen = _choose_maps(maps, checkpoint)
    with tempfile.TemporaryDirectory(prefix="ocrdet-bench-") as tmp:
        if root is None:
            root, split = synthetic_receipts(Path(tmp), "val", n), "val"
        result = _compare(Path(root), split, n, size, batch_size, Path(tmp) / "cache", checkpoint, chosen)
    if plot is not None:
        plot_rows(result.rows, plot, unit="image")
    return result


def format_result(result: ValBench) -> str:
    """The table, then each pipeline's H-mean, what was post-processed, and the baseline's validation loss."""
    ref, ours = result.baseline, result.ours
    source = "the model's maps" if result.maps == "model" else "the ground-truth probability maps"
    return "\n".join(
        [
            format_table(result.rows, unit="image"),
            "",
            f"H-mean    baseline {ref.metrics['hmean']:.4f}   ours {ours.metrics['hmean']:.4f}"
            f"   ({ours.images} images; post-processing {source})",
            f"val loss  baseline {ref.loss:.4f}   ours - (validation_step computes no loss)",
        ]
    )


def bottleneck(result: ValBench) -> str:
    """``bottleneck_report`` of our validation epoch (data read in this process, as with 0 workers)."""
    seconds = result.ours.seconds
    stages = {DATA: seconds["data"], VAL_MODEL: seconds["model"], VAL_METRIC: seconds["postprocess + metric"]}
    total_s = sum(stages.values())
    target = device() or torch.device("cpu")
    facts = RunFacts(target.type, 0, usable_cores(), eval_workers=EVAL_WORKERS)
    return bottleneck_report({stage: s / total_s for stage, s in stages.items()}, facts)
