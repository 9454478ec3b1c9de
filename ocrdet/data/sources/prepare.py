"""``ocrdet prepare``: decode every image once, on all cores, into a cache that every later run reads zero-copy.

The cache directory is ``cache_dir/<key>/``, the key being a hash of the source files (names, sizes and
modification times of the images and of the annotation file) and of the settings that change the content.
A changed source or setting gives a new key, so a stale cache is never found; a directory under the right
key that fails validation (half-written, truncated, corrupted) is removed and rebuilt. Writing goes to a
temporary directory that is renamed into place once ``manifest.json`` (written last) is in it.

Before a cache is built, the split goes through the data check (``ocrdet.data.check``): with
``on_bad_sample=error`` any problem stops the build with the whole list; with ``skip`` the unusable images
are left out and listed in the cache's ``skipped.json``. The cache's size is estimated from the image sizes
the check read, reported, and refused when the disk cannot hold it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ocrdet.atomic import fsync_path
from ocrdet.data.check import OnBadSample, check_dataset, listed_names, usable_names, write_skip_report
from ocrdet.data.config import CacheConfig, CacheKey
from ocrdet.data.io.format import AnnotationError, read_json, split_paths
from ocrdet.data.sources.cache import (
    CACHE_VERSION,
    IMAGE_CHECKSUMS,
    IMAGES,
    INDEX,
    INDEX_DTYPE,
    MANIFEST,
    MAP_KEYS,
    POINTS,
    SKIPPED,
    TARGET_DTYPE,
    TARGETS,
    WORD_DTYPE,
    WORDS,
    CacheError,
    CacheSource,
    file_checksum,
    image_checksum,
    open_cache,
)
from ocrdet.data.sources.folder import load_sample
from ocrdet.data.transforms.item import val_item
from ocrdet.data.transforms.targets import TARGETS_VERSION
from ocrdet.parallel import ordered_map, usable_cores

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".ocrdet-cache")
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class _Prepared:
    """One image ready to be written: uint8 (H, W, 3), float32 (P, 2) points, int (N,) point counts."""

    image: np.ndarray
    points: np.ndarray
    counts: np.ndarray
    ignore: np.ndarray
    matrix: np.ndarray
    maps: np.ndarray | None
    """float16 (4, S, S) in ``MAP_KEYS`` order, for validation caches."""


def _settings(config: CacheConfig, with_targets: bool) -> dict[str, Any]:
    """What changes a cache's content; for validation caches also what changes their maps: the settings and
    the code (``TARGETS_VERSION``)."""
    if with_targets:
        targets = {**asdict(config.targets), "version": TARGETS_VERSION}
        return {"decode_side": config.eval_size, "eval_size": config.eval_size, "targets": targets}
    return {"long_side": config.long_side}


def _stat(path: Path) -> list[int]:
    """[size, mtime_ns]; [-1, -1] for a file that cannot be found (the data check reports it)."""
    try:
        info = path.stat()
    except OSError:
        return [-1, -1]
    return [info.st_size, info.st_mtime_ns]


def _content(path: Path) -> list[str]:
    """[blake2b of the file's bytes]; [""] for a file that cannot be read (the data check reports it)."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return [""]
    return [digest.hexdigest()]


def cache_key(
    root: Path, split: str, names: list[str], config: CacheConfig, with_targets: bool
) -> tuple[str, dict[str, Any]]:
    """(key, its inputs): a hash of the source files (``config.key``: names with sizes and mtimes, or with a hash
    of their bytes) and of the settings."""
    image_dir, json_path = split_paths(root, split)
    describe = _content if config.key == CacheKey.CONTENT else _stat
    files = hashlib.blake2b(digest_size=16)
    for name in names:
        files.update(json.dumps([name, *describe(image_dir / name)]).encode())
    inputs = {
        "version": CACHE_VERSION,
        "root": str(Path(root).resolve()),
        "split": split,
        "with_targets": with_targets,
        "settings": _settings(config, with_targets),
        "annotations": describe(json_path),
        "images": files.hexdigest(),
    }
    if config.key == CacheKey.CONTENT:
        inputs["key"] = CacheKey.CONTENT.value
    key = hashlib.blake2b(json.dumps(inputs, sort_keys=True).encode(), digest_size=10).hexdigest()
    return key, inputs


def _prepare_one(
    task: tuple[Path, str, list[np.ndarray], np.ndarray], config: CacheConfig, with_targets: bool
) -> _Prepared:
    """Decode and shrink one image (validation: decode it as ``ocrdet predict`` does, letterbox it, draw its maps)."""
    if with_targets:
        sample = load_sample(*task, long_side=None, decode_side=config.eval_size)
    else:
        sample = load_sample(*task, long_side=config.long_side)
    image, polygons, matrix, maps = sample.image, sample.polygons, sample.matrix, None
    if with_targets:
        item = val_item(sample, config.eval_size, config.targets)
        image, polygons, matrix = item["image"].numpy(), item["polygons"], item["matrix"]
        maps = np.stack([item[key].numpy() for key in MAP_KEYS]).astype(TARGET_DTYPE)
    counts = np.array([len(p) for p in polygons], dtype=np.int64)
    points = np.concatenate(polygons).astype(np.float32) if polygons else np.zeros((0, 2), np.float32)
    return _Prepared(np.ascontiguousarray(image), points, counts, sample.ignore, matrix, maps)


def _write_cache(
    tmp: Path, results: Iterable[_Prepared], count: int, config: CacheConfig, with_targets: bool
) -> list[str]:
    """Write every file but the manifest into ``tmp``, in order of ``results``; returns each image's checksum
    (``image_checksum`` of its pixels and maps) for ``prepare --verify``."""
    checksums = []
    index = np.zeros(count, dtype=INDEX_DTYPE)
    counts, ignores, points = [], [], []
    targets = None
    if with_targets:
        shape = (count, len(MAP_KEYS), config.eval_size, config.eval_size)
        targets = np.lib.format.open_memmap(tmp / TARGETS, mode="w+", dtype=TARGET_DTYPE, shape=shape)
    offset = words = 0
    with open(tmp / IMAGES, "wb") as images:
        for i, result in enumerate(results):
            height, width = result.image.shape[:2]
            index[i] = (offset, height, width, words, words + len(result.counts), result.matrix)
            images.write(memoryview(result.image).cast("B"))
            checksums.append(image_checksum(result.image, result.maps))
            offset += result.image.nbytes
            words += len(result.counts)
            counts.append(result.counts)
            ignores.append(result.ignore)
            points.append(result.points)
            if targets is not None:
                targets[i] = result.maps
        images.flush()
        os.fsync(images.fileno())
    if targets is not None:
        targets.flush()
        del targets
    ends = np.cumsum(np.concatenate(counts))
    word_table = np.zeros(len(ends), dtype=WORD_DTYPE)
    word_table["point_end"] = ends
    word_table["point_start"] = ends - np.concatenate(counts)
    word_table["ignore"] = np.concatenate(ignores)
    np.save(tmp / INDEX, index)
    np.save(tmp / WORDS, word_table)
    np.save(tmp / POINTS, np.concatenate(points).reshape(-1, 2))
    for name in (INDEX, WORDS, POINTS) + ((TARGETS,) if with_targets else ()):
        fsync_path(tmp / name)
    return checksums


def _write_manifest(
    tmp: Path, key: str, inputs: dict[str, Any], names: list[str], checksums: list[str], seconds: float
) -> None:
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {
        "version": CACHE_VERSION,
        "key": key,
        "inputs": inputs,
        "with_targets": inputs["with_targets"],
        "count": len(names),
        "map_keys": list(MAP_KEYS),
        "map_dtype": np.dtype(TARGET_DTYPE).name,
        "prepare_seconds": round(seconds, 3),
        "files": {
            name: {"bytes": (size := (tmp / name).stat().st_size), "blake2b": file_checksum(tmp / name, size)}
            for name in files
        },
        "names": names,
        IMAGE_CHECKSUMS: checksums,
    }
    with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _remove_abandoned(cache_dir: Path) -> None:
    """Delete temporary directories left by dead prepare processes of this host."""
    host = socket.gethostname()
    for tmp in cache_dir.glob(f"{TMP_PREFIX}*"):
        parts = tmp.name[len(TMP_PREFIX) :].split("-")
        if len(parts) < 4 or parts[1] != host or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue


def _remove_superseded(cache_dir: Path, key: str, inputs: dict[str, Any]) -> None:
    """Delete caches of the same split and settings built from older versions of the source files."""
    same = {k: v for k, v in inputs.items() if k not in ("annotations", "images")}
    for other in cache_dir.iterdir():
        if other.name == key or other.name.startswith(TMP_PREFIX) or not (other / MANIFEST).is_file():
            continue
        try:
            old = json.loads((other / MANIFEST).read_text(encoding="utf-8"))["inputs"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if {k: v for k, v in old.items() if k not in ("annotations", "images")} == same:
            log.info("removing superseded cache %s", other)
            shutil.rmtree(other, ignore_errors=True)


def _valid(path: Path, key: str) -> bool:
    """True if ``path`` is a valid cache with ``key``; an invalid one is removed."""
    if not path.exists():
        return False
    try:
        open_cache(path, key)
        return True
    except CacheError as exc:
        log.warning("%s; rebuilding it", exc)
        shutil.rmtree(path, ignore_errors=True)
        return False


def estimate_bytes(sizes: Iterable[tuple[int, int]], config: CacheConfig, with_targets: bool) -> int:
    """Bytes of a cache's image (and map) files for images of stored (width, height) ``sizes``.

    Training caches hold each image shrunk to ``config.long_side`` (within a pixel per side of the real
    size); validation caches one letterboxed ``eval_size`` square and its maps per image.
    """
    if with_targets:
        side = config.eval_size
        per_image = side * side * (3 + len(MAP_KEYS) * np.dtype(TARGET_DTYPE).itemsize)
        return per_image * sum(1 for _ in sizes)
    total = 0
    for width, height in sizes:
        ratio = min(1.0, config.long_side / max(width, height))
        total += (round(width * ratio) + 1) * (round(height * ratio) + 1) * 3
    return total


def _check_space(cache_dir: Path, need: int) -> None:
    free = shutil.disk_usage(cache_dir).free
    if need > free:
        raise CacheError(
            f"{cache_dir}: the cache needs about {need / 2**30:.2f} GiB, only {free / 2**30:.2f} GiB are free "
            "(free some space, set data.cache_dir elsewhere or lower data.cache_long_side)"
        )


def prepare_cache(
    root: Path,
    split: str,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    config: CacheConfig = CacheConfig(),
    workers: int | None = None,
    with_targets: bool = False,
    on_bad_sample: OnBadSample = OnBadSample.ERROR,
) -> Path:
    """Build (or find) the cache of ``ROOT``'s ``split`` and return its directory ``cache_dir/<key>/``.

    workers: processes decoding in parallel (None: all usable cores). with_targets: store the letterboxed
    ``config.eval_size`` images with their DB maps (validation). on_bad_sample: ``error`` raises
    ``DataCheckError`` listing every problem of the split; ``skip`` leaves the unusable images out. An
    unreadable annotation file raises ``AnnotationError``; nothing is left behind then.
    """
    root, cache_dir = Path(root), Path(cache_dir)
    image_dir, json_path = split_paths(root, split)
    data = read_json(json_path)
    names = listed_names(data)
    if not names:
        raise AnnotationError(f"{json_path}: no images to prepare")
    key, inputs = cache_key(root, split, names, config, with_targets)
    final = cache_dir / key
    if _valid(final, key) and (on_bad_sample == OnBadSample.SKIP or not CacheSource(final).skipped):
        return final
    report = check_dataset(root, split, workers)
    usable = usable_names(report, on_bad_sample)
    need = estimate_bytes((report.sizes[name] for name in usable), config, with_targets)
    log.info("prepare %s: %d images, about %.1f MiB", split, len(usable), need / 2**20)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _check_space(cache_dir, need)
    _remove_abandoned(cache_dir)
    annotations = report.annotations.images
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{key}-{socket.gethostname()}-{os.getpid()}-", dir=cache_dir))
    try:
        start = time.perf_counter()
        tasks = [(image_dir / name, name, *annotations[name].polygons()) for name in usable]
        workers = min(len(tasks), workers or usable_cores())
        prepare = functools.partial(_prepare_one, config=config, with_targets=with_targets)
        with ordered_map(workers, chunksize=max(1, min(16, len(tasks) // (workers * 8)))) as mapped:
            desc = f"prepare {split} (~{need / 2**20:.0f} MiB)"
            results = tqdm(mapped(prepare, tasks), total=len(tasks), desc=desc, unit="img")
            checksums = _write_cache(tmp, results, len(tasks), config, with_targets)
        write_skip_report(tmp / SKIPPED, {split: report.errors})
        _write_manifest(tmp, key, inputs, usable, checksums, time.perf_counter() - start)
        _publish(tmp, final, key)
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(tmp)) from None  # a failed write names no file: name the cache
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_superseded(cache_dir, key, inputs)
    log.info("%s", CacheSource(final).summary())
    return final


def _publish(tmp: Path, final: Path, key: str) -> None:
    """Rename ``tmp`` to ``final``; if another process published a valid one meanwhile, keep that one."""
    try:
        os.rename(tmp, final)
    except OSError:
        if _valid(final, key):
            return
        os.rename(tmp, final)
    fsync_path(final.parent)
