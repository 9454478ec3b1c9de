"""``ocrdet prepare``: decode every image once, on all cores, into a cache that every later run reads zero-copy.

The cache directory is ``cache_dir/<key>/``, the key being a hash of the source files (names, sizes and
modification times of the images and of the annotation file) and of the settings that change the content.
A changed source or setting gives a new key, so a stale cache is never found; a directory under the right
key that fails validation (half-written, truncated, corrupted) is removed and rebuilt. Writing goes to a
temporary directory that is renamed into place once ``manifest.json`` (written last) is in it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ocrdet.data.augment import letterbox
from ocrdet.data.cache import (
    CACHE_VERSION,
    IMAGES,
    INDEX,
    INDEX_DTYPE,
    MANIFEST,
    MAP_KEYS,
    POINTS,
    TARGET_DTYPE,
    TARGETS,
    WORD_DTYPE,
    WORDS,
    CacheError,
    CacheSource,
    file_checksum,
    open_cache,
)
from ocrdet.data.decode import ImageDecodeError
from ocrdet.data.format import load_annotations, split_paths
from ocrdet.data.sources import load_sample
from ocrdet.data.targets import TargetConfig, make_db_targets

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path(".ocrdet-cache")
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class CacheConfig:
    """Settings that change what a cache holds (all of them enter its key).

    long_side: images are shrunk (INTER_AREA) so that their long side is at most this many pixels.
    val_size: side of the letterboxed square stored, with its maps, by a validation (``with_targets``) cache.
    targets: settings of those maps.
    """

    long_side: int = 1024
    val_size: int = 640
    targets: TargetConfig = TargetConfig()


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
    """The settings that change a cache's content; validation-only ones only for validation caches."""
    if with_targets:
        return {"long_side": config.long_side, "val_size": config.val_size, "targets": asdict(config.targets)}
    return {"long_side": config.long_side}


def _stat(path: Path) -> list[int]:
    try:
        info = path.stat()
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read: {exc.strerror}") from None
    return [info.st_size, info.st_mtime_ns]


def cache_key(
    root: Path, split: str, names: list[str], config: CacheConfig, with_targets: bool
) -> tuple[str, dict[str, Any]]:
    """(key, its inputs): a hash of the source files' names, sizes and mtimes, and of the settings."""
    image_dir, json_path = split_paths(root, split)
    files = hashlib.blake2b(digest_size=16)
    for name in names:
        files.update(json.dumps([name, *_stat(image_dir / name)]).encode())
    inputs = {
        "version": CACHE_VERSION,
        "root": str(Path(root).resolve()),
        "split": split,
        "with_targets": with_targets,
        "settings": _settings(config, with_targets),
        "annotations": _stat(json_path),
        "images": files.hexdigest(),
    }
    key = hashlib.blake2b(json.dumps(inputs, sort_keys=True).encode(), digest_size=10).hexdigest()
    return key, inputs


def _prepare_one(
    task: tuple[Path, str, list[np.ndarray], np.ndarray], config: CacheConfig, with_targets: bool
) -> _Prepared:
    """Decode and shrink one image (validation: also letterbox it and draw its maps)."""
    sample = load_sample(*task, long_side=config.long_side)
    image, polygons, matrix, maps = sample.image, sample.polygons, sample.matrix, None
    if with_targets:
        image, polygons, scale = letterbox(image, polygons, config.val_size)
        matrix = np.diag([scale, scale, 1.0]) @ matrix
        drawn = make_db_targets(polygons, sample.ignore, config.val_size, config.val_size, config.targets)
        maps = np.stack([drawn[key] for key in MAP_KEYS]).astype(TARGET_DTYPE)
    counts = np.array([len(p) for p in polygons], dtype=np.int64)
    points = np.concatenate(polygons).astype(np.float32) if polygons else np.zeros((0, 2), np.float32)
    return _Prepared(np.ascontiguousarray(image), points, counts, sample.ignore, matrix, maps)


@contextlib.contextmanager
def _mapper(workers: int, chunksize: int) -> Iterator[Callable[[Callable[[Any], _Prepared], list[Any]], Iterable]]:
    """An ordered ``map``: the builtin for one worker, else ``imap`` of a process pool.

    Workers are forked where the platform allows it: they start at once and, unlike spawn, need no
    ``if __name__ == "__main__"`` guard in the caller's script; they run only NumPy/OpenCV/libjpeg code.
    They must not call ``cv2.setNumThreads``: after a fork that deadlocks (OpenCV 5.0, pthread_cond_destroy).
    """
    if workers <= 1:
        yield map
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        yield functools.partial(pool.imap, chunksize=chunksize)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_cache(tmp: Path, results: Iterable[_Prepared], count: int, config: CacheConfig, with_targets: bool) -> None:
    """Write every file but the manifest into ``tmp``, in order of ``results``."""
    index = np.zeros(count, dtype=INDEX_DTYPE)
    counts, ignores, points = [], [], []
    targets = None
    if with_targets:
        shape = (count, len(MAP_KEYS), config.val_size, config.val_size)
        targets = np.lib.format.open_memmap(tmp / TARGETS, mode="w+", dtype=TARGET_DTYPE, shape=shape)
    offset = words = 0
    with open(tmp / IMAGES, "wb") as images:
        for i, result in enumerate(results):
            height, width = result.image.shape[:2]
            index[i] = (offset, height, width, words, words + len(result.counts), result.matrix)
            images.write(memoryview(result.image).cast("B"))
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
        _fsync(tmp / name)


def _write_manifest(tmp: Path, key: str, inputs: dict[str, Any], names: list[str], seconds: float) -> None:
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


def prepare_cache(
    root: Path,
    split: str,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    config: CacheConfig = CacheConfig(),
    workers: int | None = None,
    with_targets: bool = False,
) -> Path:
    """Build (or find) the cache of ``ROOT``'s ``split`` and return its directory ``cache_dir/<key>/``.

    workers: processes decoding in parallel (None: all usable cores). with_targets: store the letterboxed
    ``config.val_size`` images with their DB maps (validation). Raises ``AnnotationError`` /
    ``ImageDecodeError`` naming the bad file; nothing is left behind then.
    """
    root, cache_dir = Path(root), Path(cache_dir)
    image_dir, json_path = split_paths(root, split)
    annotations = load_annotations(json_path).images
    names = list(annotations)
    if not names:
        raise ValueError(f"{json_path}: no images to prepare")
    key, inputs = cache_key(root, split, names, config, with_targets)
    final = cache_dir / key
    if _valid(final, key):
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(cache_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{key}-{socket.gethostname()}-{os.getpid()}-", dir=cache_dir))
    try:
        start = time.perf_counter()
        tasks = [(image_dir / name, name, *annotations[name].polygons()) for name in names]
        workers = min(len(tasks), workers or len(os.sched_getaffinity(0)))
        prepare = functools.partial(_prepare_one, config=config, with_targets=with_targets)
        with _mapper(workers, chunksize=max(1, min(16, len(tasks) // (workers * 8)))) as mapped:
            results = tqdm(mapped(prepare, tasks), total=len(tasks), desc=f"prepare {split}", unit="img")
            _write_cache(tmp, results, len(tasks), config, with_targets)
        _write_manifest(tmp, key, inputs, names, time.perf_counter() - start)
        _publish(tmp, final, key)
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
    _fsync(final.parent)


def find_or_build(
    root: Path,
    split: str,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    config: CacheConfig = CacheConfig(),
    workers: int | None = None,
    with_targets: bool = False,
) -> CacheSource:
    """The cache source of ``split``, prepared first if missing or stale (what training calls)."""
    return CacheSource(prepare_cache(root, split, cache_dir, config, workers, with_targets))
