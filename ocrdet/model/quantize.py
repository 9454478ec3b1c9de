"""INT8 inference: ``ocrdet export CKPT --onnx m.onnx --int8 --calibrate DATA_ROOT``.

onnxruntime's static quantization (QDQ format, per-channel int8 weights, uint8 activations; the first convolution,
which sees the normalized pixels, stays fp32) calibrated with MinMax on real images of ``DATA_ROOT/images/train``,
letterboxed exactly as ``ocrdet predict`` feeds them. The
INT8 model keeps the fp32 export's metadata (post-processing settings, input size), so ``predict --onnx`` runs it
unchanged. When ``DATA_ROOT`` has a validation split, the H-mean of the INT8 model is checked against the fp32
one there and the INT8 file is only kept within ``HMEAN_TOLERANCE``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ocrdet.data.io.decode import IMAGE_SUFFIXES, decode_image
from ocrdet.data.io.format import split_paths
from ocrdet.data.transforms.item import val_image
from ocrdet.model.export import INPUT_NAME, OnnxModelError

HMEAN_TOLERANCE = 0.005
"""The INT8 model's H-mean may be at most this much below the fp32 model's."""
CALIBRATION_IMAGES = 32
CALIBRATION_SPLIT = "train"
CHECK_SPLIT = "val"


def calibration_images(root: str | Path, size: int, count: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    """Up to ``count`` images of ``root``'s training split (sorted by name), each a uint8 (size, size, 3) letterbox
    as ``Detector`` makes it."""
    folder = split_paths(root, CALIBRATION_SPLIT)[0]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no calibration images (expected DATA_ROOT/images/{CALIBRATION_SPLIT}/)")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not paths:
        raise FileNotFoundError(f"{folder}: no images to calibrate on")
    return [val_image(decode_image(p, min_long_side=size).image, size)[0] for p in paths]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of images, one per batch."""

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self._batches: Iterator[np.ndarray] = (image[None] for image in images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize_int8(fp32_path: str | Path, out_path: str | Path, images: Sequence[np.ndarray]) -> Path:
    """Write the INT8 version of the ocrdet export ``fp32_path`` to ``out_path``, calibrated on ``images``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    with tempfile.TemporaryDirectory(prefix="ocrdet-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        first_conv = next(n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv")
        quantized = Path(tmp) / "int8.onnx"
        quantize_static(
            str(prepared),
            str(quantized),
            _Reader(images),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=[first_conv],
        )
        model = onnx.load(str(quantized))
    source = onnx.load(str(fp32_path), load_external_data=False)
    del model.metadata_props[:]
    model.metadata_props.extend(source.metadata_props)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    return out_path


def split_hmean(model_path: Path, root: str | Path, split: str = CHECK_SPLIT) -> float:
    """IoU H-mean of the ONNX model ``model_path`` (run as ``predict --onnx`` runs it) on ``root``'s ``split``."""
    from ocrdet.data.predictions import write_predictions
    from ocrdet.eval.evaluate import evaluate_files
    from ocrdet.infer import Detector

    image_dir, gt_path = split_paths(root, split)
    paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    with tempfile.TemporaryDirectory(prefix="ocrdet-int8-") as tmp:
        predictions = Path(tmp) / "pred.csv"
        write_predictions(Detector.from_onnx(model_path).detect_files(paths), predictions)
        return evaluate_files(gt_path, predictions).summary["hmean"]


@dataclass(frozen=True)
class Int8Check:
    path: Path
    calibration_images: int
    fp32_hmean: float | None
    """None: ``DATA_ROOT`` has no validation split to check on."""
    int8_hmean: float | None


def export_int8(fp32_path: Path, out_path: Path, root: str | Path, size: int) -> Int8Check:
    """Quantize ``fp32_path`` calibrated on ``root``; check the H-mean on ``root``'s validation split when it has
    one, and raise ``OnnxModelError`` (writing nothing) when INT8 falls more than ``HMEAN_TOLERANCE`` below fp32."""
    images = calibration_images(root, size)
    image_dir, gt_path = split_paths(root, CHECK_SPLIT)
    with tempfile.TemporaryDirectory(prefix="ocrdet-int8-") as tmp:
        candidate = quantize_int8(fp32_path, Path(tmp) / "int8.onnx", images)
        fp32 = int8 = None
        if image_dir.is_dir() and gt_path.is_file():
            fp32, int8 = split_hmean(fp32_path, root), split_hmean(candidate, root)
            if int8 < fp32 - HMEAN_TOLERANCE:
                raise OnnxModelError(
                    f"{out_path}: not written: INT8 H-mean {int8:.4f} is more than {HMEAN_TOLERANCE} below fp32's "
                    f"{fp32:.4f} on {gt_path}; use the fp32 export"
                )
        out_path.parent.mkdir(parents=True, exist_ok=True)
        candidate.replace(out_path)
    return Int8Check(out_path, len(images), fp32, int8)


def format_int8(check: Int8Check) -> str:
    line = f"wrote INT8 model {check.path} (calibrated on {check.calibration_images} images)"
    if check.fp32_hmean is None:
        return line + f"; H-mean not checked (no {CHECK_SPLIT} split with annotations beside the calibration images)"
    return line + f"; H-mean on {CHECK_SPLIT}: INT8 {check.int8_hmean:.4f}, fp32 {check.fp32_hmean:.4f}"
