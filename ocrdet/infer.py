"""Inference on image files: checkpoint -> polygons in each file's stored pixel frame, and overlays."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ocrdet.data.augment import letterbox
from ocrdet.data.decode import decode_image
from ocrdet.data.predictions import Predictions
from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.model.postprocess import PostprocessConfig, postprocess

DEFAULT_SIZE = 640


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file."""


def load_checkpoint(path: str | Path) -> tuple[DBNet, PostprocessConfig, int]:
    """(model in eval mode, its post-processing settings, its input size) from a Lightning checkpoint.

    Loaded with ``weights_only=True``: a checkpoint is data, never code.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    hparams = ckpt.get("hyper_parameters", {})
    if "model" not in hparams or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not an ocrdet checkpoint (no model settings or weights)")
    model = DBNet(ModelConfig(**hparams["model"]))
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    size = int(hparams.get("input_size", DEFAULT_SIZE))
    return model.eval(), PostprocessConfig(**hparams["postprocess"]), size


class Detector:
    """Runs DBNet on whole images: decode (EXIF applied), letterbox, forward, post-process, map back."""

    def __init__(self, model: DBNet, postprocess: PostprocessConfig, size: int, device: str = "cpu") -> None:
        self.model = model.to(device)
        self.postprocess = postprocess
        self.size = size
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **postprocess_overrides: float) -> Detector:
        model, post, size = load_checkpoint(path)
        return cls(model, replace(post, **postprocess_overrides), size, device)

    @torch.inference_mode()
    def detect(self, path: str | Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """(polygons in the stored frame, scores, the upright decoded image with polygons in its frame drawn)."""
        decoded = decode_image(path, min_long_side=self.size)
        image, _, scale = letterbox(decoded.image, [], self.size)
        prob = self.model(torch.from_numpy(image)[None].to(self.device))["prob"][0, 0].float().cpu().numpy()
        polygons, scores = postprocess(prob, self.postprocess)
        in_image = [p / scale for p in polygons]
        stored = [decoded.to_stored(p) for p in in_image]
        return stored, scores, draw_polygons(decoded.image, in_image)

    def detect_files(self, paths: list[Path], overlay_dir: Path | None = None) -> Predictions:
        predictions: Predictions = {}
        for path in paths:
            polygons, _, overlay = self.detect(path)
            predictions[path.name] = polygons
            if overlay_dir is not None:
                overlay_dir.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(overlay_dir / f"{path.stem}.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
        return predictions


def draw_polygons(image: np.ndarray, polygons: list[np.ndarray], color: tuple[int, int, int] = (255, 0, 0)) -> np.ndarray:
    """A copy of uint8 RGB ``image`` with polygon outlines drawn."""
    out = image.copy()
    pts = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polygons]
    cv2.polylines(out, pts, isClosed=True, color=color, thickness=max(1, round(max(image.shape[:2]) / 500)))
    return out
