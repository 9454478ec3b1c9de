"""The training warp step by step: the slow, obviously correct counterpart of ``augment.warp`` (one fused affine
map), which the tests compare it with.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocrdet.data.transforms.augment import WarpParams


def reference_warp(
    image: np.ndarray, polygon: np.ndarray, params: WarpParams, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The warp ``params`` of a uint8 (H, W, 3) image and one float (N, 2) polygon, as separate OpenCV steps:
    flip, rotate + zoom into the whole result, crop (pixel-centre frame). Returns the crop and the points."""
    height, width = image.shape[:2]
    points = polygon.astype(np.float64) - 0.5
    if params.flip:
        image = cv2.flip(image, 1)
        points[:, 0] = width - 1 - points[:, 0]
    rotation = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), params.angle_deg, params.zoom)
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    moved = corners @ rotation[:, :2].T + rotation[:, 2]
    rotation[:, 2] -= moved.min(axis=0) + 0.5
    extent = np.ceil(np.ptp(moved, axis=0)).astype(int)
    canvas = (max(int(extent[0]), params.x0 + size), max(int(extent[1]), params.y0 + size))
    whole = cv2.warpAffine(image, rotation, canvas, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    crop = whole[params.y0 : params.y0 + size, params.x0 : params.x0 + size]
    points = points @ rotation[:, :2].T + rotation[:, 2] - [params.x0, params.y0] + 0.5
    return crop, points
