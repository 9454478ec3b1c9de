"""ONNX export of a trained DBNet (``ocrdet export CKPT --onnx model.onnx``) and its onnxruntime counterpart.

The graph is the eval-mode model: uint8 (B, H, W, 3) RGB images in (``images``; normalization happens inside),
float32 (B, 1, H, W) probability map out (``prob``); batch, H and W are dynamic, H and W multiples of 32. The
post-processing settings and the input size travel in the file's metadata, so an ``OnnxDBNet`` needs nothing else.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ocrdet.model.dbnet import DBNet
from ocrdet.model.postprocess import PostprocessConfig
from ocrdet.settings import check_input_size

INPUT_NAME = "images"
OUTPUT_NAME = "prob"
META_POSTPROCESS = "ocrdet.postprocess"
"""Metadata key: the PostprocessConfig as JSON."""
META_INPUT_SIZE = "ocrdet.input_size"
"""Metadata key: the side of the square images the model was validated on (letterbox size)."""
STRIDE = 32
"""H and W of the input must be multiples of this (the backbone's output stride)."""
CHECK_ATOL = 1e-4
"""Largest difference of probability allowed between onnxruntime and PyTorch when an export is checked."""


class OnnxModelError(ValueError):
    """An ONNX file that cannot be used as an ocrdet model; the message names the file."""


def export_onnx(model: DBNet, path: str | Path, postprocess: PostprocessConfig, input_size: int) -> Path:
    """Write ``model`` (put in eval mode) to ``path`` as one self-contained ONNX file with ocrdet's metadata."""
    path = Path(path)
    if input_size % STRIDE:
        raise OnnxModelError(f"{path}: input size {input_size} is not a multiple of {STRIDE}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Batch 2 and H != W, so that torch.export keeps all three sizes symbolic instead of specializing them.
    example = torch.zeros((2, 2 * STRIDE, 3 * STRIDE, 3), dtype=torch.uint8)
    dims = {0: torch.export.Dim("batch"), 1: STRIDE * torch.export.Dim("h"), 2: STRIDE * torch.export.Dim("w")}
    program = torch.onnx.export(
        model.eval(),
        (example,),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={INPUT_NAME: dims},
        dynamo=True,
        verbose=False,
    )
    program.model.metadata_props.update(
        {META_POSTPROCESS: json.dumps(asdict(postprocess)), META_INPUT_SIZE: str(input_size)}
    )
    program.save(path, external_data=False)
    return path


def _providers(device: str) -> list[str | tuple[str, dict[str, int]]]:
    """onnxruntime execution providers for a torch-style device string (``cpu``, ``cuda``, ``cuda:1``)."""
    import onnxruntime as ort

    kind, _, index = device.partition(":")
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise OnnxModelError(f"device {device}: this onnxruntime has no CUDA support (install onnxruntime-gpu)")
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]
    raise OnnxModelError(f"device {device}: onnxruntime runs on 'cpu' or 'cuda'")


class OnnxDBNet:
    """An exported DBNet in onnxruntime: uint8 (B, H, W, 3) images -> float32 (B, 1, H, W) probability maps.

    ``postprocess`` and ``input_size`` come from the file's metadata; ``threads``: onnxruntime's intra-op threads.
    Raises ``OnnxModelError`` naming the file when it is missing, unreadable or not an ocrdet export.
    """

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(f"{self.path}: ONNX model not found")
        try:
            options = ort.SessionOptions()
            if threads is not None:  # default: onnxruntime's (one per physical core)
                options.intra_op_num_threads = threads
            self.session = ort.InferenceSession(str(self.path), options, providers=_providers(device))
        except OnnxModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for bad files
            raise OnnxModelError(f"{self.path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs = [i.name for i in self.session.get_inputs()]
        if META_POSTPROCESS not in meta or META_INPUT_SIZE not in meta or inputs != [INPUT_NAME]:
            raise OnnxModelError(f"{self.path}: not an ocrdet ONNX export (write one with `ocrdet export`)")
        try:
            self.postprocess = PostprocessConfig(**json.loads(meta[META_POSTPROCESS]))
            self.input_size = check_input_size(json.loads(meta[META_INPUT_SIZE]), "input_size")
        except (ValueError, TypeError) as exc:  # SettingsError and JSONDecodeError are ValueErrors
            raise OnnxModelError(f"{self.path}: a stored setting is refused: {exc}") from None

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 (B, H, W, 3) images, got {images.dtype} {images.shape}")
        if images.shape[1] % STRIDE or images.shape[2] % STRIDE:
            raise ValueError(f"image height and width must be multiples of {STRIDE}, got {images.shape[1:3]}")
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images)})[0]


@dataclass(frozen=True)
class ExportCheck:
    """What ``export_checked`` wrote and how closely onnxruntime reproduced PyTorch on it."""

    path: Path
    megabytes: float
    export_s: float
    shapes: list[tuple[int, ...]]
    """The uint8 (B, H, W, 3) input shapes compared."""
    max_abs_diff: float
    """Largest |onnxruntime - PyTorch| over all probabilities of all compared inputs."""


def check_shapes(input_size: int) -> list[tuple[int, ...]]:
    """Input shapes an export is checked on: one image at ``input_size`` and a batch of 2 of another H and W."""
    small = max(STRIDE, input_size // 2 // STRIDE * STRIDE)
    return [(1, input_size, input_size, 3), (2, small, small + STRIDE, 3)]


def max_difference(model: DBNet, onnx_model: OnnxDBNet, shapes: list[tuple[int, ...]], seed: int = 0) -> float:
    """Largest |onnxruntime - PyTorch| probability on random uint8 images of the given (B, H, W, 3) shapes."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in shapes:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        with torch.inference_mode():
            expected = model.eval()(torch.from_numpy(images))["prob"].float().numpy()
        worst = max(worst, float(np.abs(onnx_model(images) - expected).max()))
    return worst


def export_checked(model: DBNet, postprocess: PostprocessConfig, input_size: int, path: str | Path) -> ExportCheck:
    """Export (see ``export_onnx``), reload the file in onnxruntime and compare it with PyTorch.

    Raises ``OnnxModelError`` when a probability differs by more than ``CHECK_ATOL``.
    """
    start = time.perf_counter()
    path = export_onnx(model, path, postprocess, input_size)
    export_s = time.perf_counter() - start
    shapes = check_shapes(input_size)
    diff = max_difference(model, OnnxDBNet(path), shapes)
    if not diff <= CHECK_ATOL:
        raise OnnxModelError(f"{path}: onnxruntime differs from PyTorch by up to {diff:.2e} (> {CHECK_ATOL:.0e})")
    return ExportCheck(path, path.stat().st_size / 2**20, export_s, shapes, diff)


def format_check(check: ExportCheck) -> str:
    """A few lines for the terminal."""
    shapes = ", ".join("x".join(map(str, s)) for s in check.shapes)
    return (
        f"wrote {check.path} ({check.megabytes:.1f} MiB) in {check.export_s:.1f} s\n"
        f"onnxruntime vs PyTorch on uint8 inputs {shapes}: max |prob difference| {check.max_abs_diff:.1e} "
        f"(limit {CHECK_ATOL:.0e})"
    )
