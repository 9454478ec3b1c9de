"""Overlays a person can read: the full-resolution upright image with polygons drawn (``predict --overlay``), and
ground truth beside predictions by match state (``evaluate --overlay``) in the web page's colours.

The colours are those of ``ocrdet/serve/static/style.css`` (a test keeps the two equal): ground truth matched
green, missed orange, don't care grey; detections matched blue, false positive red, don't care grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ocrdet.atomic import atomic_open
from ocrdet.data.io.decode import decode_image

GT_COLORS = {"matched": "#12a150", "missed": "#f79009", "ignore": "#8b949e"}
"""Ground-truth state -> colour (the web page's ``.gt.matched``, ``.missed``, ``.ignore``)."""
DET_COLORS = {"matched": "#1f6feb", "false_positive": "#e5175f", "ignore": "#8b949e"}
"""Detection state -> colour (the web page's ``.det.matched``, ``.false_positive``, ``.ignore``)."""
PREDICTION_COLOR = DET_COLORS["false_positive"]
"""Detections without ground truth (the web page's ``.detected``)."""


def rgb(color: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b)."""
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def line_width(image: np.ndarray) -> int:
    """Outline thickness that stays visible when the image is viewed whole."""
    return max(1, round(max(image.shape[:2]) / 500))


def draw_polygons(
    image: np.ndarray, polygons: Sequence[np.ndarray], color: tuple[int, int, int], thickness: int | None = None
) -> np.ndarray:
    """``image`` (uint8 RGB, drawn in place and returned) with polygon outlines."""
    pts = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polygons]
    cv2.polylines(image, pts, isClosed=True, color=color, thickness=thickness or line_width(image))
    return image


def overlay_canvas(path: str | Path, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB upright image at ``scale`` x full resolution, 3x3 matrix: stored-frame points -> that image)."""
    if not scale > 0:
        raise ValueError(f"overlay scale must be > 0, got {scale}")
    decoded = decode_image(path)
    image = decoded.image
    if scale != 1.0:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
    sx, sy = image.shape[1] / decoded.image.shape[1], image.shape[0] / decoded.image.shape[0]
    return np.array(image, order="C"), np.diag([sx, sy, 1.0]) @ decoded.matrix  # a writable copy to draw on


def to_canvas(matrix: np.ndarray, polygons: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Stored-frame polygons -> points on the overlay canvas."""
    return [np.asarray(p, np.float64) @ matrix[:2, :2].T + matrix[:2, 2] for p in polygons]


def write_png(path: Path, image: np.ndarray) -> None:
    """Write uint8 RGB ``image`` as a PNG, atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: could not encode the overlay")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        f.write(data.tobytes())


def prediction_overlay(path: str | Path, polygons: Sequence[np.ndarray], scale: float = 1.0) -> np.ndarray:
    """The image file at ``path`` (upright, ``scale`` x full resolution) with stored-frame ``polygons`` drawn."""
    image, matrix = overlay_canvas(path, scale)
    return draw_polygons(image, to_canvas(matrix, polygons), rgb(PREDICTION_COLOR))


def evaluation_overlay(
    path: str | Path,
    gt: Sequence[np.ndarray],
    gt_states: Sequence[str],
    det: Sequence[np.ndarray],
    det_states: Sequence[str],
    scale: float = 1.0,
) -> np.ndarray:
    """The image file at ``path`` with ground truth (thick) and detections (thin) coloured by their match states
    (``ocrdet.eval.evaluate.match_states``); polygons in the stored frame."""
    image, matrix = overlay_canvas(path, scale)
    width = line_width(image)
    for polygon, state in zip(to_canvas(matrix, gt), gt_states, strict=True):
        draw_polygons(image, [polygon], rgb(GT_COLORS[state]), width + 1)
    for polygon, state in zip(to_canvas(matrix, det), det_states, strict=True):
        draw_polygons(image, [polygon], rgb(DET_COLORS[state]), width)
    return image


def write_evaluation_overlays(
    gt_path: str | Path, pred_path: str | Path, out_dir: Path, images: str | Path | None = None, scale: float = 1.0
) -> int:
    """One PNG per ground-truth image (``out_dir/<stem>.png``, ``evaluation_overlay``); images from ``images`` or
    ``ROOT/images/<split>`` for a ground truth at ``ROOT/jsons/<split>.json``. Returns the number written."""
    from ocrdet.data.io.format import split_paths
    from ocrdet.eval.evaluate import align_predictions, match_states
    from ocrdet.eval.files import read_annotation_polygons, read_detections

    gt_path = Path(gt_path)
    image_dir = Path(images) if images else split_paths(gt_path.parent.parent, gt_path.stem)[0]
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no image folder for the overlays (give --images)")
    gts = read_annotation_polygons(gt_path)  # read as ``evaluate`` reads them: the same pairs as its figures
    dets = align_predictions(gts, read_detections(pred_path), str(pred_path))
    for (name, (polys, ignore, _)), det in zip(gts.items(), dets, strict=True):
        gt_states, det_states = match_states(polys, ignore, det)
        image = evaluation_overlay(image_dir / name, polys, gt_states, det, det_states, scale)
        write_png(out_dir / f"{Path(name).stem}.png", image)
    return len(gts)
