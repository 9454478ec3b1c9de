"""Inference on image files: checkpoint -> polygons in each file's stored pixel frame, and overlays."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ocrdet.checkpoint import CheckpointError, read_checkpoint
from ocrdet.data.config import EVAL_SIZE
from ocrdet.data.io.decode import INVERSE_ORIENTATION, DecodedImage, ImageDecodeError, apply_orientation, decode_image
from ocrdet.data.io.predictions import Predictions
from ocrdet.data.io.saved_maps import save_maps
from ocrdet.data.transforms.augment import letterbox_extent
from ocrdet.data.transforms.item import val_image
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
    """A DBNet on a device behind the same call as ``OnnxDBNet``: uint8 (B, H, W, 3) numpy images ->
    float32 (B, 1, H, W) numpy probability maps."""

    def __init__(self, model: DBNet, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(images).to(self.device))["prob"].float().cpu().numpy()


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
    """

    def __init__(
        self,
        model: Callable[[np.ndarray], np.ndarray],
        postprocess: PostprocessConfig,
        eval_size: int,
        max_side: int | None = None,
    ) -> None:
        check_input_size(eval_size, "eval size")
        if max_side is not None:
            check_input_size(max_side, "max side")
        self.model = model
        self.postprocess = postprocess
        self.eval_size = eval_size
        self.max_side = max(eval_size, max_side or eval_size)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        eval_size: int | None = None,
        max_side: int | None = None,
        **postprocess_overrides: float,
    ) -> Detector:
        """A detector on a training checkpoint: its post-processing and size unless given here."""
        model, post, stored_size = load_checkpoint(path)
        return cls(
            TorchDBNet(model, device), replace(post, **postprocess_overrides), eval_size or stored_size, max_side
        )

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
        return self.detect_decoded(decode_image(path, min_long_side=self.max_side))

    def _forward(self, image: np.ndarray, side: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, float]:
        """(probability map, polygons and scores on the canvas, canvas / image scale) at letterbox side ``side``."""
        canvas, scale = val_image(image, side)
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
        for path in tqdm(paths, desc="predict", unit="img", disable=len(paths) < 2):
            try:
                detection = self.detect(path)
            except ImageDecodeError as exc:
                if on_error is None:
                    raise
                on_error(exc)
                continue
            predictions[path.name] = detection.polygons
            if overlay_dir is not None:
                write_png(overlay_dir / f"{path.stem}.png", prediction_overlay(path, detection.polygons, overlay_scale))
            if maps_path is not None:
                names.append(path.name)
                maps.append(detection.prob_map)
                scales.append(detection.map_scale)
        if maps_path is not None:
            save_maps(maps_path, names, maps, scales)
        return predictions
