"""Inference on image files: checkpoint -> polygons in each file's stored pixel frame, and overlays."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ocrdet.checkpoint import CheckpointError, read_checkpoint
from ocrdet.data.config import EVAL_SIZE
from ocrdet.data.io.decode import (
    INVERSE_ORIENTATION,
    DecodedImage,
    ImageDecodeError,
    apply_orientation,
    decode_bytes,
    read_image_bytes,
)
from ocrdet.data.io.gpu_decode import AUTO, CPU, choose_decoder, decode_on_device
from ocrdet.data.io.predictions import Predictions
from ocrdet.data.io.saved_maps import save_maps
from ocrdet.data.transforms.augment import letterbox_extent
from ocrdet.data.transforms.item import val_image, val_image_tensor
from ocrdet.model.backbone import check_builtin_backbone
from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.model.export import STRIDE as INPUT_STRIDE
from ocrdet.model.export import OnnxDBNet
from ocrdet.model.postprocess import PostprocessConfig, postprocess
from ocrdet.overlay import prediction_overlay, write_png
from ocrdet.settings import SettingsError, check_input_size


def load_checkpoint(path: str | Path) -> tuple[DBNet, PostprocessConfig, int]:
    """(model in eval mode, its post-processing settings, its ``eval_size``) from a Lightning checkpoint.

    Nothing is fetched: the architecture is built without pretrained weights (whatever ``model.pretrained`` the
    checkpoint stored) and must be one built into timm. Every stored setting is checked with the same types and
    limits as on the command line before anything is built.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters", {})
    if not isinstance(hparams, dict) or not isinstance(hparams.get("model"), dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not an ocrdet checkpoint (no model settings or weights)")
    size_key = "eval_size" if "eval_size" in hparams else "input_size"  # input_size: older checkpoints
    try:
        config = ModelConfig(**{**hparams["model"], "pretrained": False})
        check_builtin_backbone(config.backbone)
        post = PostprocessConfig(**hparams.get("postprocess", {}))
        size = check_input_size(hparams.get(size_key, EVAL_SIZE), size_key)
    except SettingsError as exc:
        raise CheckpointError(f"{path}: a stored setting is refused: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(f"{path}: settings do not fit this ocrdet's model ({exc})") from None
    try:
        model = DBNet(config)
        state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        reason = str(exc).splitlines()[0]
        raise CheckpointError(f"{path}: weights or settings do not fit this ocrdet's model ({reason})") from None
    return model.eval(), post, size


@dataclass(frozen=True)
class Detection:
    polygons: list[np.ndarray]
    """float32 (N_i, 2) in the file's stored pixel frame (the annotation frame)."""
    scores: np.ndarray
    side: int
    """The letterbox side the polygons were found at (``Detector.eval_size``, or larger when the scale picker chose)."""
    prob_map: np.ndarray
    """float32 (h, w) probability map turned back to the stored frame's orientation."""
    map_scale: tuple[float, float]
    """(sx, sy) = map size / stored image size."""


class TorchDBNet:
    """A DBNet on a device behind the same call as ``OnnxDBNet``: uint8 (B, H, W, 3) numpy images (or tensors,
    e.g. already on the device) -> float32 (B, 1, H, W) numpy probability maps."""

    def __init__(self, model: DBNet, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        return self.model(torch.as_tensor(images, device=self.device))["prob"].float().cpu().numpy()


TEXT_HEIGHT = 16.0
"""The scale picker's target: median text height, in network pixels, that ``Detector`` scales small text up to."""


def text_height(polygons: list[np.ndarray]) -> float | None:
    """Median short side of the polygons' minimum-area rectangles (the height of a text line), None without any."""
    if not polygons:
        return None
    return float(np.median([min(cv2.minAreaRect(p.astype(np.float32))[1]) for p in polygons]))


def pick_side(height: float | None, size: int, max_side: int, target: float = TEXT_HEIGHT) -> int:
    """The letterbox side that brings text measured ``height`` px tall at side ``size`` to ``target`` px: a multiple
    of ``INPUT_STRIDE`` within [size, max_side]; ``size`` when no text was measured or it is tall enough."""
    if height is None or height <= 0 or height >= target or max_side <= size:
        return size
    wanted = math.ceil(size * target / height / INPUT_STRIDE) * INPUT_STRIDE
    return max(size, min(wanted, max_side // INPUT_STRIDE * INPUT_STRIDE))


class Detector:
    """Runs DBNet on whole images: decode (EXIF applied), letterbox, forward, post-process, map back.

    ``model``: PyTorch (``TorchDBNet``) or onnxruntime (``ocrdet.model.export.OnnxDBNet``); the rest is shared.
    ``eval_size``: the letterbox side (the checkpoint's ``data.eval_size`` unless overridden). ``max_side`` >
    ``eval_size`` turns on the scale picker: a first pass at it measures the text (``text_height``); when it is shorter
    than ``TEXT_HEIGHT`` network pixels, a second pass runs at the side that makes it so, at most ``max_side``
    (``pick_side``). Pages with text of ordinary size cost one pass.

    ``decoder`` (``ocrdet.data.io.gpu_decode.DECODERS``): ``cpu`` decodes with ours (DCT-scaled) and letterboxes with
    OpenCV; ``gpu`` decodes ``DECODE_BATCH`` files at a time with torchvision on ``device`` (nvJPEG on CUDA) and
    letterboxes there, so the pixels never cross to the host; ``auto`` (the default of ``from_checkpoint``) times
    both on the first batch where ``device`` is CUDA and keeps the faster. ``model`` must then take tensors on
    ``device`` (``TorchDBNet`` does).
    """

    DECODE_BATCH = 8
    """Files read and decoded together (one batched nvJPEG call)."""

    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        postprocess: PostprocessConfig,
        eval_size: int,
        max_side: int | None = None,
        decoder: str = CPU,
        device: str = "cpu",
    ) -> None:
        check_input_size(eval_size, "eval size")
        if max_side is not None:
            check_input_size(max_side, "max side")
        self.model = model
        self.postprocess = postprocess
        self.eval_size = eval_size
        self.max_side = max(eval_size, max_side or eval_size)
        self.decoder, self.device = decoder, device
        choose_decoder(decoder, device, [], eval_size)  # an unknown name fails here, before any file is read

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        eval_size: int | None = None,
        max_side: int | None = None,
        decoder: str = AUTO,
        **postprocess_overrides: float,
    ) -> Detector:
        """A detector on a training checkpoint: its post-processing and size unless given here."""
        model, post, stored_size = load_checkpoint(path)
        post = replace(post, **postprocess_overrides)
        return cls(TorchDBNet(model, device), post, eval_size or stored_size, max_side, decoder, device)

    @classmethod
    def from_onnx(
        cls,
        path: str | Path,
        device: str = "cpu",
        eval_size: int | None = None,
        max_side: int | None = None,
        **postprocess_overrides: float,
    ) -> Detector:
        """A detector on an ``ocrdet export`` file, run by onnxruntime; settings from the file's metadata."""
        model = OnnxDBNet(path, device)
        post = replace(model.postprocess, **postprocess_overrides)
        return cls(model, post, eval_size or model.input_size, max_side)

    def detect(self, path: str | Path) -> Detection:
        decoded = self.decode([Path(path)])[0]
        if isinstance(decoded, ImageDecodeError):
            raise decoded
        return self.detect_decoded(decoded)

    def decode(self, paths: list[Path]) -> list[DecodedImage | ImageDecodeError]:
        """Each file decoded by this detector's decoder (``auto`` resolved on these files the first time), or the
        ``ImageDecodeError`` naming it."""
        datas: list[bytes | ImageDecodeError] = []
        for path in paths:
            try:
                datas.append(read_image_bytes(path))
            except ImageDecodeError as exc:
                datas.append(exc)
        readable = [(path, data) for path, data in zip(paths, datas, strict=True) if isinstance(data, bytes)]
        self.decoder = choose_decoder(self.decoder, self.device, [data for _, data in readable], self.eval_size)
        decode = self._decode_cpu if self.decoder == CPU else self._decode_device
        decoded = iter(decode(readable))
        return [data if isinstance(data, ImageDecodeError) else next(decoded) for data in datas]

    def _decode_cpu(self, files: list[tuple[Path, bytes]]) -> list[DecodedImage | ImageDecodeError]:
        out: list[DecodedImage | ImageDecodeError] = []
        for path, data in files:
            try:
                out.append(decode_bytes(data, min_long_side=self.max_side))
            except ImageDecodeError as exc:
                out.append(ImageDecodeError(f"{path}: {exc}"))
        return out

    def _decode_device(self, files: list[tuple[Path, bytes]]) -> list[DecodedImage | ImageDecodeError]:
        try:
            return list(decode_on_device([data for _, data in files], self.device))
        except ImageDecodeError:  # name the file: decode one by one
            out: list[DecodedImage | ImageDecodeError] = []
            for path, data in files:
                try:
                    out.append(decode_on_device([data], self.device)[0])
                except ImageDecodeError as exc:
                    out.append(ImageDecodeError(f"{path}: {exc}"))
            return out

    def _forward(
        self, image: np.ndarray | torch.Tensor, side: int
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, float]:
        """(probability map, polygons and scores on the canvas, canvas / image scale) at letterbox side ``side``."""
        canvas, scale = val_image_tensor(image, side) if isinstance(image, torch.Tensor) else val_image(image, side)
        prob = self.model(canvas[None])[0, 0]
        polygons, scores = postprocess(prob, self.postprocess)
        return prob, polygons, scores, scale

    def detect_decoded(self, decoded: DecodedImage) -> Detection:
        """``detect`` for an image decoded elsewhere (e.g. uploaded bytes); ``min_long_side=self.max_side`` is
        enough."""
        prob, polygons, scores, scale = self._forward(decoded.image, self.eval_size)
        side = self.eval_size
        if self.max_side > self.eval_size:
            # every candidate counts for the estimate, also those too thin for min_size at this scale
            found, _ = postprocess(prob, replace(self.postprocess, min_size=1.0))
            side = pick_side(text_height(found), self.eval_size, self.max_side)
            if side != self.eval_size:
                prob, polygons, scores, scale = self._forward(decoded.image, side)
        in_image = [p / scale for p in polygons]
        height, width = letterbox_extent(decoded.image.shape, scale)
        stored_map = apply_orientation(prob[:height, :width], INVERSE_ORIENTATION[decoded.orientation])
        return Detection(
            polygons=[decoded.to_stored(p) for p in in_image],
            scores=scores,
            side=side,
            prob_map=np.ascontiguousarray(stored_map),
            map_scale=(stored_map.shape[1] / decoded.stored_size[0], stored_map.shape[0] / decoded.stored_size[1]),
        )

    def detect_files(
        self,
        paths: list[Path],
        overlay_dir: Path | None = None,
        maps_path: Path | None = None,
        on_error: Callable[[ImageDecodeError], None] | None = None,
        overlay_scale: float = 1.0,
    ) -> Predictions:
        """Polygons per file name; optionally overlay PNGs (``overlay_scale`` x the file's full resolution) and the
        probability maps for ``evaluate --sweep``.

        An image that cannot be decoded raises ImageDecodeError; with ``on_error`` it goes to ``on_error``
        instead and is left out of everything, and the other images go on.
        """
        predictions: Predictions = {}
        names, maps, scales = [], [], []
        progress = tqdm(total=len(paths), desc="predict", unit="img", disable=len(paths) < 2)
        for path, decoded in self._decoded_files(paths):
            progress.update()
            if isinstance(decoded, ImageDecodeError):
                if on_error is None:
                    raise decoded
                on_error(decoded)
                continue
            detection = self.detect_decoded(decoded)
            predictions[path.name] = detection.polygons
            if overlay_dir is not None:
                write_png(overlay_dir / f"{path.stem}.png", prediction_overlay(path, detection.polygons, overlay_scale))
            if maps_path is not None:
                names.append(path.name)
                maps.append(detection.prob_map)
                scales.append(detection.map_scale)
        progress.close()
        if maps_path is not None:
            save_maps(maps_path, names, maps, scales)
        return predictions

    def _decoded_files(self, paths: list[Path]) -> Iterator[tuple[Path, DecodedImage | ImageDecodeError]]:
        """Each file with its decoded image (or error), ``DECODE_BATCH`` files decoded at a time."""
        for start in range(0, len(paths), self.DECODE_BATCH):
            chunk = paths[start : start + self.DECODE_BATCH]
            yield from zip(chunk, self.decode(chunk), strict=True)
