"""The one place a sample becomes a batch item: ``train_item(sample, draw, targets)``, ``val_item(sample, size,
targets)``.

Every path builds its items here: the Dataset (image folder or prepared cache), the shard stream, ``prepare``
(a validation cache stores ``val_item``'s image and maps), the DALI backend (``train_labels`` / ``val_labels``:
the same labels without pixels, which DALI then makes from the same ``TrainDraw`` or letterbox scale) and
``predict`` (``val_image``, or ``val_image_tensor`` on the device after a GPU decode).

An item is a dict: ``image`` uint8 tensor (S, S, 3); the DB maps ``MAP_KEYS``, (S, S) tensors in
``MAP_DTYPES``; ``name`` (file name relative to ``images/<split>/``); ``polygons`` float32 (N_i, 2) and
``ignore`` bool (N,) in the network frame; ``matrix`` float64 (3, 3): stored-frame (annotation file) points ->
the sample's image (training: before the warp) or the network frame (validation). A training item's random
choices are one ``TrainDraw``, drawn once per item. Where the time goes: the warp (OpenCV, uint8) and the maps
(``targets``); the rest is bookkeeping on a few hundred points.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ocrdet.data.sources.base import Sample
from ocrdet.data.transforms.augment import (
    AugmentConfig,
    apply_colour,
    draw_colour,
    letterbox,
    letterbox_extent,
    sample_warp,
    transform_polygons,
    warp,
    warp_matrix,
    warp_polygons,
)
from ocrdet.data.transforms.maps import MAP_DTYPES, MAP_KEYS, TargetConfig


@dataclass(frozen=True)
class TrainDraw:
    """Every random choice of one training item, drawn once (``draw_train``): applied to the pixels by
    ``train_item`` (OpenCV) or by DALI, to the polygons by ``train_labels``."""

    matrix: np.ndarray
    """float64 (2, 3): the warp (flip, rotation, zoom, crop) on polygon coordinates of the sample's image."""
    size: int
    """Side of the square crop."""
    colour: tuple[tuple[float, ...], ...]
    """The parameters of each ``augment.COLOUR_OPS`` step, in order."""


def draw_train(
    height: int, width: int, polygons: Sequence[np.ndarray], rng: np.random.Generator, augment: AugmentConfig
) -> TrainDraw:
    """The training draw of a (height, width) image with float (N_i, 2) polygons: warp first, then colour."""
    params = sample_warp(height, width, polygons, rng, augment)
    return TrainDraw(warp_matrix(params, height, width), augment.size, draw_colour(rng, augment))


def labels(
    name: str, polygons: list[np.ndarray], ignore: np.ndarray, matrix: np.ndarray, size: int, targets: TargetConfig
) -> dict[str, Any]:
    """Everything of an item but its image, from polygons already in the (size, size) network frame."""
    from ocrdet.data.transforms.targets import make_db_targets  # here: predict uses this module, not the numba kernel

    maps = make_db_targets(polygons, ignore, size, size, targets)
    out: dict[str, Any] = {key: torch.from_numpy(maps[key]) for key in MAP_KEYS}
    out.update(name=name, polygons=polygons, ignore=ignore, matrix=matrix)
    return out


def train_labels(
    name: str,
    polygons: Sequence[np.ndarray],
    ignore: np.ndarray,
    matrix: np.ndarray,
    draw: TrainDraw,
    targets: TargetConfig,
) -> dict[str, Any]:
    """The labels of a training item: ``polygons`` (sample's image frame) warped by ``draw``, those still in the
    crop kept, and their maps; ``matrix`` is the sample's."""
    moved, kept = warp_polygons(polygons, draw.matrix, draw.size)
    return labels(name, moved, ignore[kept], matrix, draw.size, targets)


def train_item(sample: Sample, draw: TrainDraw, targets: TargetConfig) -> dict[str, Any]:
    """The training item of ``sample``: warped and coloured by ``draw``, with its labels."""
    image, _, _ = warp(sample.image, [], draw.matrix, draw.size)
    image = apply_colour(image, draw.colour)
    item = {"image": torch.from_numpy(image)}
    return item | train_labels(sample.name, sample.polygons, sample.ignore, sample.matrix, draw, targets)


def val_image(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """uint8 (H, W, 3) -> the letterboxed uint8 (size, size, 3) network input and its scale (canvas / image)."""
    canvas, _, scale = letterbox(image, [], size)
    return canvas, scale


def val_image_tensor(image: torch.Tensor, size: int) -> tuple[torch.Tensor, float]:
    """``val_image`` on a uint8 (H, W, 3) tensor, on its device (the ``gpu`` decoder of ``predict``): the same
    scale, extent and zero padding, resized by antialiased bilinear interpolation (as the DALI backend does) instead
    of OpenCV's INTER_AREA / INTER_LINEAR: about a grey level apart on average, more at sharp text edges."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    h, w = letterbox_extent(image.shape, scale)
    canvas = torch.zeros((size, size, 3), dtype=torch.uint8, device=image.device)
    if (h, w) == (height, width):
        canvas[:h, :w] = image
        return canvas, scale
    x = image.permute(2, 0, 1)[None].float()
    resized = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    canvas[:h, :w] = resized[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)
    return canvas, scale


def val_labels(
    name: str,
    polygons: Sequence[np.ndarray],
    ignore: np.ndarray,
    matrix: np.ndarray,
    scale: float,
    size: int,
    targets: TargetConfig,
) -> dict[str, Any]:
    """The labels of a validation item whose image is letterboxed by ``scale`` into a (size, size) canvas."""
    moved = transform_polygons(polygons, np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]]))
    return labels(name, moved, ignore, np.diag([scale, scale, 1.0]) @ matrix, size, targets)


def val_item(sample: Sample, size: int, targets: TargetConfig) -> dict[str, Any]:
    """The validation item of ``sample``: letterboxed to ``size``, with its labels."""
    image, scale = val_image(sample.image, size)
    item = {"image": torch.from_numpy(image)}
    return item | val_labels(sample.name, sample.polygons, sample.ignore, sample.matrix, scale, size, targets)


def stored_item(sample: Sample, maps: dict[str, np.ndarray]) -> dict[str, Any]:
    """The item of a sample stored ready-made with its maps (a validation cache holds ``val_item``'s)."""
    item: dict[str, Any] = {"image": torch.from_numpy(np.array(sample.image))}
    item.update({key: torch.from_numpy(maps[key].astype(MAP_DTYPES[key])) for key in MAP_KEYS})
    item.update(name=sample.name, polygons=sample.polygons, ignore=sample.ignore, matrix=sample.matrix)
    return item


class AugmentRandom:
    """The generator of training augmentations of one process, seeded from ``torch.initial_seed()`` on first use.

    It advances from sample to sample and from epoch to epoch. (Seeding per sample from the worker seed and the
    index would repeat itself: persistent DataLoader workers keep their seed, so each image would see at most
    ``num_workers`` different augmentations in a whole run.) A copy in another process (a DataLoader worker)
    starts its own generator from that process's seed, so runs are reproducible.
    """

    def __init__(self) -> None:
        self._pid, self._rng = -1, np.random.default_rng(0)

    def get(self) -> np.random.Generator:
        if self._pid != os.getpid():
            self._pid, self._rng = os.getpid(), np.random.default_rng(torch.initial_seed() % 2**63)
        return self._rng


class Items:
    """Sample -> item of one split: training draws a ``TrainDraw`` per sample from this process's generator,
    validation letterboxes to ``eval_size``."""

    def __init__(self, train: bool, augment: AugmentConfig, targets: TargetConfig, eval_size: int) -> None:
        self.train, self.augment, self.targets, self.eval_size = train, augment, targets, eval_size
        self._random = AugmentRandom()

    def draw(self, height: int, width: int, polygons: Sequence[np.ndarray]) -> TrainDraw:
        """The next training draw for a (height, width) image."""
        return draw_train(height, width, polygons, self._random.get(), self.augment)

    def __call__(self, sample: Sample) -> dict[str, Any]:
        if self.train:
            height, width = sample.image.shape[:2]
            return train_item(sample, self.draw(height, width, sample.polygons), self.targets)
        return val_item(sample, self.eval_size, self.targets)
