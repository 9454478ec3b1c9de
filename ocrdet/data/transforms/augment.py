"""Augmentation on uint8 images: one fused affine warp (flip, rotate, scale, crop) for image and polygons, then
the colour steps of ``COLOUR_OPS`` (each defined once for OpenCV and for DALI).

Polygon coordinates are continuous with pixel (row i, column j) covering [j, j + 1) x [i, i + 1), the convention of
``cv2.resize``: scaling an image by s scales its polygons by exactly s. Matrices below act on such coordinates;
``pixel_matrix`` turns one into what ``cv2.warpAffine`` expects (pixel centres at integers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from ocrdet.arrays import check_polygons, split_rows


@dataclass(frozen=True)
class AugmentConfig:
    """Settings of the training augmentation.

    size: side of the square output, px.
    scale: zoom range, drawn uniformly, relative to the scale that fits the whole image into ``size``
        (1 = the validation letterbox scale).
    rotate_deg: rotation drawn uniformly from [-rotate_deg, rotate_deg] degrees.
    flip_prob: probability of a horizontal flip (mirrored text reads backwards, hence 0).
    crop_tries: attempts at a crop window whose edges cut no text box and that holds a whole polygon.
    brightness, contrast: out = alpha * x + beta * 255 with alpha drawn from [1 - contrast, 1 + contrast] and beta
        from [-brightness, brightness], as albumentations' RandomBrightnessContrast (whose 0.2 defaults these are).
    """

    size: int = 640
    scale: tuple[float, float] = (0.5, 2.0)
    rotate_deg: float = 10.0
    flip_prob: float = 0.0
    crop_tries: int = 10
    brightness: float = 0.2
    contrast: float = 0.2

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {self.size}")
        if len(self.scale) != 2 or not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be a (low, high) pair with 0 < low <= high, got {self.scale}")
        if not 0.0 <= self.rotate_deg <= 180.0:
            raise ValueError(f"rotate_deg must lie in [0, 180], got {self.rotate_deg}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must lie in [0, 1], got {self.flip_prob}")
        if self.crop_tries < 1:
            raise ValueError(f"crop_tries must be at least 1, got {self.crop_tries}")
        if not 0.0 <= self.brightness <= 1.0:
            raise ValueError(f"brightness must lie in [0, 1], got {self.brightness}")
        if not 0.0 <= self.contrast < 1.0:
            raise ValueError(f"contrast must lie in [0, 1), got {self.contrast}")


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is a non-empty uint8 (H, W, 3) array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected a uint8 (H, W, 3) image, got shape {shape} and dtype {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")


def pixel_matrix(matrix: np.ndarray) -> np.ndarray:
    """(2, 3) affine map on polygon coordinates -> the same map for ``cv2.warpAffine`` (pixel centres at integers)."""
    out = np.array(matrix, dtype=np.float64)
    out[:, 2] += out[:, :2].sum(axis=1) * 0.5 - 0.5
    return out


def transform_polygons(polygons: Sequence[np.ndarray], matrix: np.ndarray) -> list[np.ndarray]:
    """Apply a (2, 3) affine map to float (N_i, 2) polygons with one ``cv2.transform``; float32 (N_i, 2) out."""
    points, starts = _transform(polygons, matrix)
    return split_rows(points, starts[1:]) if len(starts) else []


def _transform(polygons: Sequence[np.ndarray], matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All points of the polygons moved by a (2, 3) map, float32 (P, 2), and each polygon's first index, int (N,)."""
    if not polygons:
        return np.zeros((0, 2), dtype=np.float32), np.zeros(0, dtype=np.int64)
    points = np.concatenate(check_polygons(polygons, min_points=1)).astype(np.float32)
    starts = np.cumsum([0] + [len(p) for p in polygons[:-1]])
    return cv2.transform(points[:, None, :], np.asarray(matrix, dtype=np.float64))[:, 0, :], starts


def _boxes(points: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Bounding boxes of the polygons of ``_transform``: float32 (N, 2, 2), [:, 0] the minimum, [:, 1] the maximum."""
    if not len(starts):
        return np.zeros((0, 2, 2), dtype=np.float32)
    return np.stack([np.minimum.reduceat(points, starts), np.maximum.reduceat(points, starts)], axis=1)


@dataclass(frozen=True)
class WarpParams:
    """One training warp, in this order: horizontal flip, rotation about the image centre and zoom, crop.

    ``angle_deg`` turns counter-clockwise on screen (as ``cv2.getRotationMatrix2D``). The rotated, zoomed image's
    bounding box is put at the origin and the output window's top-left corner is (x0, y0) in it.
    """

    zoom: float
    angle_deg: float
    flip: bool
    x0: int = 0
    y0: int = 0


def warp_matrix(params: WarpParams, height: int, width: int) -> np.ndarray:
    """Float64 (2, 3) matrix on polygon coordinates of the warp ``params`` of a (height, width) image."""
    angle = math.radians(params.angle_deg)
    cos, sin = params.zoom * math.cos(angle), params.zoom * math.sin(angle)
    matrix = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    matrix[:2, 2] = -matrix[:2, :2] @ [width / 2, height / 2]
    if params.flip:
        matrix = matrix @ np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    matrix[:2, 2] -= _image_corners(height, width, matrix[:2]).min(axis=0) + [params.x0, params.y0]
    return matrix[:2]


def _image_corners(height: int, width: int, matrix: np.ndarray) -> np.ndarray:
    """The four corners of a (height, width) image moved by a (2, 3) matrix, float64 (4, 2)."""
    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], dtype=np.float64)
    return corners @ matrix[:, :2].T + matrix[:, 2]


def sample_warp(
    height: int, width: int, polygons: Sequence[np.ndarray], rng: np.random.Generator, config: AugmentConfig
) -> WarpParams:
    """Draw the training warp of a (height, width) image with float (N_i, 2) polygons.

    The window is chosen as MhLiao/DB's RandomCropData does: preferably with edges that cut no polygon's bounding
    box and holding at least one whole polygon. Along a side where the warped image is shorter than the window,
    the image sits at the start (top / left), as in ``letterbox``.
    """
    zoom = config.size / max(height, width) * rng.uniform(*config.scale)
    params = WarpParams(zoom, rng.uniform(-config.rotate_deg, config.rotate_deg), bool(rng.random() < config.flip_prob))
    matrix = warp_matrix(params, height, width)
    extent = _image_corners(height, width, matrix).max(axis=0)
    x0, y0 = _choose_window(_boxes(*_transform(polygons, matrix)), extent, config.size, config.crop_tries, rng)
    return replace(params, x0=x0, y0=y0)


def _choose_window(
    boxes: np.ndarray, extent: np.ndarray, size: int, tries: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Integer top-left corner of a size x size window in a (width, height) ``extent``; boxes: (N, 2, 2) min/max."""
    starts = []
    for axis in (0, 1):
        candidates = np.arange(max(0, math.floor(extent[axis] - size)) + 1)
        lo, hi = boxes[:, 0, axis, None], boxes[:, 1, axis, None]
        cuts = ((lo < candidates) & (candidates < hi)) | ((lo < candidates + size) & (candidates + size < hi))
        free = candidates[~cuts.any(axis=0)]
        starts.append(free if len(free) else candidates)
    for _ in range(tries if len(boxes) else 1):
        x0, y0 = int(rng.choice(starts[0])), int(rng.choice(starts[1]))
        inside = (boxes[:, 0] >= [x0, y0]) & (boxes[:, 1] <= [x0 + size, y0 + size])
        if inside.all(axis=1).any():
            break
    return x0, y0


def warp(
    image: np.ndarray, polygons: Sequence[np.ndarray], matrix: np.ndarray, size: int
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Apply a (2, 3) polygon-coordinate affine map to a uint8 (H, W, 3) image and its polygons.

    Returns the uint8 (size, size, 3) image (bilinear, zero border), the float32 (N_i, 2) polygons whose bounding
    box still meets the image, and the int64 indices of those polygons in the input.
    """
    check_image(image)
    out = cv2.warpAffine(
        image, pixel_matrix(matrix), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return (out, *warp_polygons(polygons, matrix, size))


def warp_polygons(polygons: Sequence[np.ndarray], matrix: np.ndarray, size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The float32 (N_i, 2) polygons moved by ``matrix`` whose bounding box meets the size x size output, and
    the int64 indices of those polygons in the input."""
    points, starts = _transform(polygons, matrix)
    boxes = _boxes(points, starts)
    kept = np.flatnonzero((boxes[:, 1] > 0).all(axis=1) & (boxes[:, 0] < size).all(axis=1))
    moved = split_rows(points, starts[1:])
    return [moved[i] for i in kept], kept


def random_warp(
    image: np.ndarray, polygons: Sequence[np.ndarray], rng: np.random.Generator, config: AugmentConfig = AugmentConfig()
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Training warp of a uint8 (H, W, 3) image with float (N_i, 2) polygons; returns as ``warp``."""
    check_image(image)
    params = sample_warp(image.shape[0], image.shape[1], polygons, rng, config)
    return warp(image, polygons, warp_matrix(params, image.shape[0], image.shape[1]), config.size)


def brightness_contrast(image: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """uint8 image -> uint8 image of the same shape, clip(alpha * x + beta * 255) through one ``cv2.LUT``."""
    table = np.clip(np.arange(256, dtype=np.float32) * alpha + beta * 255, 0, 255).astype(np.uint8)
    return cv2.LUT(image, table)


def sample_jitter(rng: np.random.Generator, config: AugmentConfig) -> tuple[float, float]:
    """Draw (alpha, beta) of ``brightness_contrast``: contrast first, then brightness."""
    alpha = 1.0 + rng.uniform(-config.contrast, config.contrast)
    return alpha, rng.uniform(-config.brightness, config.brightness)


def _dali_brightness_contrast(image: Any, params: Any) -> Any:
    from nvidia.dali import fn

    return fn.brightness_contrast(image, brightness=params[0], brightness_shift=params[1], contrast=1.0)


@dataclass(frozen=True)
class ColourOp:
    """One colour augmentation, in every backend: its parameters drawn once per item (``draw``), applied to a
    uint8 (H, W, 3) image with OpenCV/NumPy (``apply``) and as a DALI graph step (``dali``: image node and the
    float32 parameters' node -> image node). A new colour augmentation is a row of ``COLOUR_OPS``."""

    name: str
    draw: Callable[[np.random.Generator, AugmentConfig], tuple[float, ...]]
    apply: Callable[..., np.ndarray]
    """``apply(image, *params)``."""
    dali: Callable[[Any, Any], Any]


COLOUR_OPS = (ColourOp("brightness_contrast", sample_jitter, brightness_contrast, _dali_brightness_contrast),)
"""Applied in this order after the warp; drawn in this order after it (``ocrdet.data.transforms.item.draw_train``)."""


def draw_colour(rng: np.random.Generator, config: AugmentConfig) -> tuple[tuple[float, ...], ...]:
    """The parameters of every ``COLOUR_OPS`` step, in order."""
    return tuple(tuple(float(x) for x in op.draw(rng, config)) for op in COLOUR_OPS)


def apply_colour(image: np.ndarray, params: Sequence[Sequence[float]]) -> np.ndarray:
    """The ``COLOUR_OPS`` steps with ``params`` (``draw_colour``) on a uint8 (H, W, 3) image."""
    for op, values in zip(COLOUR_OPS, params, strict=True):
        image = op.apply(image, *values)
    return image


def color_jitter(image: np.ndarray, rng: np.random.Generator, config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Every colour augmentation of a uint8 (H, W, 3) image, drawn from ``rng``; uint8 of the same shape out."""
    check_image(image)
    return apply_colour(image, draw_colour(rng, config))


def letterbox_extent(shape: Sequence[int], scale: float) -> tuple[int, int]:
    """(height, width) that an image of ``shape`` (H, W, ...) covers on the letterbox canvas: at least 1 pixel each."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def letterbox(
    image: np.ndarray, polygons: Sequence[np.ndarray], size: int
) -> tuple[np.ndarray, list[np.ndarray], float]:
    """Fit a uint8 (H, W, 3) image into a (size, size, 3) uint8 canvas: longest side to ``size``, zero padding
    bottom and right.

    Returns the canvas, the float32 (N_i, 2) polygons multiplied by ``scale``, and ``scale``; dividing coordinates
    found on the canvas by ``scale`` maps them back to the input image.
    """
    check_image(image)
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    height, width = image.shape[:2]
    scale = size / max(height, width)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    if round(height * scale) and round(width * scale):
        resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation)
    else:  # a sliver (30000 x 10 px): its short side would round to 0 pixels, keep 1
        resized = cv2.resize(image, letterbox_extent(image.shape, scale)[::-1], interpolation=interpolation)
    out = np.zeros((size, size, 3), dtype=np.uint8)
    out[: resized.shape[0], : resized.shape[1]] = resized
    return out, transform_polygons(polygons, np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])), scale
