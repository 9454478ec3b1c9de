"""``bench suite``'s inference rows and the README's INT8 table: ms/image and H-mean (IoU and CLEval) of one model
run by PyTorch (fp32), onnxruntime fp32 and onnxruntime INT8, at each thread count, on one data split.

Every engine predicts the split's images exactly as ``ocrdet predict`` does (decode, letterbox, model,
post-processing); ms/image is the model call alone, timed per image after one warm-up call. The INT8 model is
calibrated on the training split (``ocrdet.model.quantize``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ocrdet.data.io.decode import IMAGE_SUFFIXES
from ocrdet.data.io.format import split_paths
from ocrdet.data.io.predictions import write_predictions
from ocrdet.eval.evaluate import evaluate_files
from ocrdet.infer import Detector, TorchDBNet, load_checkpoint
from ocrdet.model.export import OnnxDBNet, export_checked
from ocrdet.model.quantize import calibration_images, quantize_int8


@dataclass(frozen=True)
class InferRow:
    engine: str
    threads: int
    ms_per_image: float
    hmean: float
    cleval_hmean: float


class _Timed:
    """Wraps a model callable and adds up its wall time (``Detector`` calls it once per image)."""

    def __init__(self, model: Callable[[np.ndarray], np.ndarray]) -> None:
        self.model, self.seconds, self.calls = model, 0.0, 0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self.model(images)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def _score(detector: Detector, paths: Sequence[Path], gt: Path, timed: _Timed) -> tuple[float, float, float]:
    """(ms per image of the model, IoU H-mean, CLEval H-mean) of ``detector`` on ``paths``."""
    detector.detect(paths[0])  # warm-up: first-call allocations, onnxruntime's arena
    timed.seconds, timed.calls = 0.0, 0
    predictions = detector.detect_files(list(paths))
    with tempfile.TemporaryDirectory(prefix="ocrdet-bench-infer-") as tmp:
        csv = Path(tmp) / "pred.csv"
        write_predictions(predictions, csv)
        iou = evaluate_files(gt, csv).summary["hmean"]
        cleval = evaluate_files(gt, csv, metric="cleval").summary["hmean"]
    return 1000 * timed.seconds / timed.calls, iou, cleval


def bench_infer(
    checkpoint: Path,
    root: Path,
    split: str = "val",
    threads: Sequence[int] = (1, 2),
    box_thresh: float | None = None,
) -> list[InferRow]:
    """One row per (engine, thread count): torch fp32, onnxruntime fp32, onnxruntime INT8 on ``root``'s ``split``;
    the INT8 model is calibrated on ``root``'s training images. ``box_thresh`` overrides the checkpoint's."""
    model, post, size = load_checkpoint(checkpoint)
    post = post if box_thresh is None else replace(post, box_thresh=box_thresh)
    image_dir, gt = split_paths(root, split)
    paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    rows = []
    before = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="ocrdet-bench-infer-") as tmp:
        fp32 = export_checked(model, post, size, Path(tmp) / "fp32.onnx").path
        int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx", calibration_images(root, size))
        try:
            for n in threads:
                torch.set_num_threads(n)
                engines = {
                    "torch fp32": TorchDBNet(model),
                    "onnxruntime fp32": OnnxDBNet(fp32, threads=n),
                    "onnxruntime INT8": OnnxDBNet(int8, threads=n),
                }
                for name, engine in engines.items():
                    timed = _Timed(engine)
                    rows.append(InferRow(name, n, *_score(Detector(timed, post, size), paths, gt, timed)))
        finally:
            torch.set_num_threads(before)
    return rows


def format_infer(rows: Sequence[InferRow]) -> str:
    """A Markdown table (the README's)."""
    lines = ["| engine | threads | ms/image | H-mean (IoU) | H-mean (CLEval) |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r.engine} | {r.threads} | {r.ms_per_image:.0f} | {r.hmean:.4f} | {r.cleval_hmean:.4f} |" for r in rows
    ]
    return "\n".join(lines)
