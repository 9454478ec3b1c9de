"""Read side of the prepared cache: zero-copy ``np.memmap`` views shared by every worker and run.

A cache directory (written by ``ocrdet.data.sources.prepare``) holds:

- ``images.u8``    all images, uint8 HWC, concatenated;
- ``index.npy``    one ``INDEX_DTYPE`` record per image: byte offset, height, width, word range, matrix;
- ``words.npy``    one ``WORD_DTYPE`` record per polygon: point range and don't-care flag;
- ``points.npy``   float32 (P, 2), all polygon points in their image's pixel frame;
- ``targets.npy``  only for validation caches: float16 (N, 4, S, S), the maps ``MAP_KEYS`` of the
  letterboxed S x S image (float16 is exact for the 0/1 maps and within 2.5e-4 on ``thresh``);
- ``skipped.json`` the images the data check left out (``on_bad_sample=skip``), with their problems;
- ``manifest.json`` written last: format version, key and its inputs, names, counts, byte sizes and
  blake2b checksums of every file.

No manifest, a different version or key, a wrong size or a wrong checksum: not a cache (``CacheError``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ocrdet.arrays import split_rows
from ocrdet.data.check import Problem, read_skip_report
from ocrdet.data.sources.base import Sample
from ocrdet.data.transforms.maps import MAP_KEYS

CACHE_VERSION = 3
"""Bump when the layout or the content of a cache changes; older caches are then rebuilt. (A change of the
target maps alone bumps ``TARGETS_VERSION`` in ``targets.py`` instead, which enters the cache key.) 3: the key
holds ``eval_size`` and the targets' version."""

MANIFEST = "manifest.json"
IMAGES = "images.u8"
INDEX = "index.npy"
WORDS = "words.npy"
POINTS = "points.npy"
TARGETS = "targets.npy"
SKIPPED = "skipped.json"
TARGET_DTYPE = np.float16

INDEX_DTYPE = np.dtype(
    [
        ("offset", "<i8"),
        ("height", "<i4"),
        ("width", "<i4"),
        ("word_start", "<i8"),
        ("word_end", "<i8"),
        ("matrix", "<f8", (3, 3)),
    ]
)
WORD_DTYPE = np.dtype([("point_start", "<i8"), ("point_end", "<i8"), ("ignore", "?")])

FULL_HASH_LIMIT = 16 << 20
"""Files up to this size are hashed whole; larger ones (images, targets) through ``SAMPLE_BLOCKS`` blocks."""
SAMPLE_BLOCKS = 256
SAMPLE_BLOCK_BYTES = 64 << 10


IMAGE_CHECKSUMS = "image_checksums"
"""Manifest key: one ``image_checksum`` per image, in index order (``verify_cache``)."""


class CacheError(RuntimeError):
    """A cache directory that must not be read; the message names the directory and the problem."""


def file_checksum(path: Path, size: int) -> str:
    """blake2b of ``path``: whole when ``size <= FULL_HASH_LIMIT``, else of the size and evenly spaced blocks.

    Sampling bounds the cost of opening a large cache (full hashing runs at ~0.4 GB/s on one core).
    """
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    fd = os.open(path, os.O_RDONLY)
    try:
        if size <= FULL_HASH_LIMIT:
            offsets = range(0, size, SAMPLE_BLOCK_BYTES)
        else:
            offsets = np.linspace(0, size - SAMPLE_BLOCK_BYTES, SAMPLE_BLOCKS).astype(np.int64).tolist()
        for offset in offsets:
            digest.update(os.pread(fd, SAMPLE_BLOCK_BYTES, offset))
    finally:
        os.close(fd)
    return digest.hexdigest()


def image_checksum(image: np.ndarray, maps: np.ndarray | None) -> str:
    """blake2b of one cached image's pixels (and, in a validation cache, its maps)."""
    digest = hashlib.blake2b(memoryview(np.ascontiguousarray(image)).cast("B"), digest_size=16)
    if maps is not None:
        digest.update(memoryview(np.ascontiguousarray(maps)).cast("B"))
    return digest.hexdigest()


def verify_cache(path: str | Path) -> list[str]:
    """Names of the images of cache ``path`` whose pixels or maps do not match their checksums, every byte read
    (opening a cache hashes large files through samples only, ~9% of ``images.u8`` for SROIE); all names when the
    cache predates per-image checksums. CacheError when the cache is not valid at all."""
    source = open_cache(path)
    expected = source.manifest.get(IMAGE_CHECKSUMS)
    if not isinstance(expected, list) or len(expected) != len(source):
        return list(source.names)
    arrays = source._open()
    bad = []
    for i, (name, checksum) in enumerate(zip(source.names, expected, strict=True)):
        record = arrays.index[i]
        start, height, width = int(record["offset"]), int(record["height"]), int(record["width"])
        pixels = arrays.images[start : start + height * width * 3]
        maps = arrays.targets[i] if arrays.targets is not None else None
        if image_checksum(pixels, maps) != checksum:
            bad.append(name)
    return bad


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of cache directory ``path``, checked for version, files, sizes and checksums."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheError(f"{path}: no {MANIFEST} (not a cache, or one whose writing did not finish)") from None
    except (OSError, ValueError) as exc:
        raise CacheError(f"{path}: unreadable {MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("version") != CACHE_VERSION:
        found = manifest.get("version") if isinstance(manifest, dict) else None
        raise CacheError(f"{path}: cache format version {found!r}, this ocrdet reads version {CACHE_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not {"key", "count", "names", "with_targets"} <= manifest.keys():
        raise CacheError(f"{path}: {MANIFEST} lacks the file list or counts")
    for name, entry in files.items():
        try:
            size = (path / name).stat().st_size
        except FileNotFoundError:
            raise CacheError(f"{path}: {name} is missing") from None
        if size != entry["bytes"]:
            raise CacheError(f"{path}: {name} has {size} bytes, the manifest says {entry['bytes']} (truncated?)")
        if file_checksum(path / name, size) != entry["blake2b"]:
            raise CacheError(f"{path}: {name} does not match its checksum (corrupted)")
    return manifest


def open_cache(path: str | Path, key: str | None = None) -> CacheSource:
    """Validate cache directory ``path`` (and its key, when given) and return its source; ``CacheError`` if invalid."""
    path = Path(path)
    manifest = read_manifest(path)
    if key is not None and manifest["key"] != key:
        raise CacheError(f"{path}: cache key {manifest['key']} differs from the expected {key} (stale)")
    return CacheSource(path)


class _Arrays:
    """The memmaps of one cache, opened in one process."""

    def __init__(self, path: Path, with_targets: bool) -> None:
        self.images = np.memmap(path / IMAGES, dtype=np.uint8, mode="r")
        self.index = np.load(path / INDEX, mmap_mode="r")
        self.words = np.load(path / WORDS, mmap_mode="r")
        self.points = np.load(path / POINTS, mmap_mode="r")
        self.targets = np.load(path / TARGETS, mmap_mode="r") if with_targets else None


class CacheSource:
    """Samples of a validated cache (see ``open_cache``); ``get`` returns views into shared memmaps.

    Pickling keeps only the path: each process (DataLoader worker, fork or spawn) opens its own memmaps on
    first use, and all of them share the page cache, so the data is in memory once however many workers read it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._manifest: dict[str, Any] | None = None
        self._arrays: _Arrays | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest (read once per process; ``open_cache`` has checked it)."""
        if self._manifest is None:
            self._manifest = json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        return self._manifest

    @property
    def names(self) -> list[str]:
        return self.manifest["names"]

    @property
    def skipped(self) -> list[Problem]:
        """Images of the split that the data check left out of this cache."""
        return [p for problems in read_skip_report(self.path / SKIPPED).values() for p in problems]

    @property
    def has_targets(self) -> bool:
        """True for a validation cache holding letterboxed images and their final maps."""
        return self.manifest["with_targets"]

    @property
    def nbytes(self) -> int:
        """Bytes on disk, which is also the page-cache memory shared by all readers."""
        return sum(entry["bytes"] for entry in self.manifest["files"].values())

    def summary(self) -> str:
        """One line: image count, size per file and total, images the data check left out."""
        files = ", ".join(f"{name} {entry['bytes'] / 2**20:.1f} MiB" for name, entry in self.manifest["files"].items())
        skipped = len({p.file for p in self.skipped})
        left_out = f"; {skipped} images left out by the data check, listed in {SKIPPED}" if skipped else ""
        size = f"{self.nbytes / 2**20:.1f} MiB on disk and in memory"
        return f"{self.path}: {len(self)} images, {size} ({files}){left_out}"

    def _open(self) -> _Arrays:
        if self._arrays is None or self._pid != os.getpid():
            self._arrays = _Arrays(self.path, self.has_targets)
            self._pid = os.getpid()
        return self._arrays

    def __len__(self) -> int:
        return self.manifest["count"]

    def get(self, index: int) -> Sample:
        """Sample ``index``: the image is a read-only uint8 (H, W, 3) memmap view; polygons are small copies."""
        arrays = self._open()
        record = arrays.index[index]
        height, width, offset = int(record["height"]), int(record["width"]), int(record["offset"])
        image = arrays.images[offset : offset + height * width * 3].reshape(height, width, 3)
        words = arrays.words[int(record["word_start"]) : int(record["word_end"])]
        if len(words):
            points = np.array(arrays.points[int(words["point_start"][0]) : int(words["point_end"][-1])])
            polygons = split_rows(points, words["point_end"][:-1] - words["point_start"][0])
        else:
            polygons = []
        ignore = np.array(words["ignore"], dtype=bool)
        return Sample(image, polygons, ignore, self.names[index], np.array(record["matrix"]))

    def targets(self, index: int) -> dict[str, np.ndarray]:
        """Stored maps of image ``index`` as read-only float16 (S, S) views; only for ``has_targets`` caches."""
        if not self.has_targets:
            raise CacheError(f"{self.path}: this cache holds no targets (prepare it with with_targets=True)")
        maps = self._open().targets[index]
        return {key: maps[k] for k, key in enumerate(MAP_KEYS)}
