"""What every source gives: ``Sample`` (decoded, upright, shrunk) or ``EncodedSample`` (bytes), and ``Source``.

The folder and the cache are read by index (``Source.get``: the native Dataset); the shards
(``sources.shards.ShardSource``) in order, shard by shard, since a stream has no random access (``read``: the
shard stream). A backend that decodes itself (DALI) takes ``EncodedSample`` bytes (``FolderSource.encoded``,
``ShardSource.read``). ``sources.folder.shrink_sample`` is the one way a decoded image becomes a ``Sample``, so
the folder, the cache (written from folder samples) and the shards (``ShardSource.decode``) hold the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ocrdet.data.check import Problem


@dataclass(frozen=True)
class Sample:
    """One annotated image, upright and resized."""

    image: np.ndarray
    """uint8 (H, W, 3) RGB; from a cache a read-only view into its memmap."""
    polygons: list[np.ndarray]
    """float32 (N_i, 2) points in ``image``'s pixel frame."""
    ignore: np.ndarray
    """bool (len(polygons),) don't-care flags."""
    name: str
    """File name relative to ``images/<split>/``."""
    matrix: np.ndarray
    """float64 (3, 3): stored-frame (annotation file) points -> ``image`` points."""


@dataclass(frozen=True)
class EncodedSample:
    """One sample not yet decoded: encoded image bytes and polygons (a shard member, or a file's bytes)."""

    data: bytes
    """The encoded image (in a shard upright: its EXIF orientation, if any, is 1)."""
    polygons: list[np.ndarray]
    """float32 (N_i, 2) points in ``data``'s stored pixel frame."""
    ignore: np.ndarray
    """bool (len(polygons),) don't-care flags."""
    name: str
    """File name relative to ``images/<split>/``."""
    matrix: np.ndarray
    """float64 (3, 3): annotation-file points -> ``data``'s stored pixel frame."""
    key: str
    """The sample's key in its shard (its index for a folder)."""


class Source(Protocol):
    """What a Dataset needs from a source of samples read by index (``ShardSource`` has ``len`` and
    ``skipped`` too, and reads in order instead of ``get``)."""

    names: list[str]
    skipped: list[Problem]
    """Images the data check left out (``on_bad_sample=skip``), for the run's ``skipped.json``."""

    def __len__(self) -> int: ...

    def get(self, index: int) -> Sample: ...
