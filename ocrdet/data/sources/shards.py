"""WebDataset shards: writing them (``ocrdet shard``), reading their members safely, and ``ShardSource``, the
shards as a source (``open_shards``).

A shard is a plain tar of samples; sample ``<key>`` is two members, written by ``webdataset.ShardWriter``:

- ``<key>.jpg`` (or ``.png``, ...): the image, upright. The file's own bytes when its EXIF orientation is
  1 (or absent); otherwise the decoded, turned image re-encoded (JPEG at ``JPEG_QUALITY``, else PNG);
- ``<key>.json``: ``{"name", "polygons", "ignore", "matrix"}``: the file name relative to ``images/<split>/``,
  the word polygons in the stored image's pixel frame, their don't-care flags, and the 3x3 matrix from the
  annotation file's frame (the original file's stored pixels) to the stored image's, so that predictions map
  back.

``index.json`` beside the shards lists every split's shard names with their sample counts; streaming needs
the counts to give every DDP rank an epoch of the same length. Reading never extracts to disk and refuses
what a shard written here cannot hold: unsafe member names, links or devices, members over a size cap,
truncated or corrupt archives (``ShardError`` names the shard, the member and the problem).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import simplejpeg
import webdataset as wds
from PIL import Image

from ocrdet.atomic import atomic_write_text
from ocrdet.data.check import Problem
from ocrdet.data.io.decode import (
    IMAGE_SUFFIXES,
    JPEG_START,
    ImageDecodeError,
    decode_bytes,
    read_image_bytes,
    read_orientation,
    transform_points,
)
from ocrdet.data.io.format import load_annotations, split_paths
from ocrdet.data.sources.base import EncodedSample, Sample
from ocrdet.data.sources.folder import shrink_sample
from ocrdet.parallel import ordered_map, usable_cores

INDEX = "index.json"
SHARD_PATTERN = "{split}-%06d.tar"
JPEG_QUALITY = 95
IMAGE_EXTENSIONS = sorted(suffix[1:] for suffix in IMAGE_SUFFIXES)
"""Image members a shard may hold: the suffixes ``decode`` reads."""
MAX_IMAGE_BYTES = 256 << 20
"""Largest image member read from a shard."""
MAX_JSON_BYTES = 16 << 20
"""Largest annotation member read from a shard."""

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


class ShardError(ValueError):
    """A shard that cannot be read or written; the message names the shard (and member) and the problem."""


def parse_size(text: str) -> int:
    """'500MB' -> 500_000_000; units B, KB, MB, GB, TB (powers of 1000) and KiB, MiB, GiB (powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"shard size {text!r}: expected a number with a unit, e.g. 500MB or 1GB")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"shard size {text!r} must be positive")
    return size


def _upright_bytes(data: bytes, suffix: str) -> tuple[bytes, str, np.ndarray]:
    """(upright encoded image, its extension, 3x3 stored -> upright matrix); validates the image by decoding it."""
    orientation = read_orientation(data)
    if orientation == 1:
        decode_bytes(data, min_long_side=1)  # the DCT-scaled (1/8) decode still reads every coefficient
        ext = "jpg" if suffix in ("jpg", "jpeg") else suffix
        if ext not in IMAGE_EXTENSIONS:
            raise ImageDecodeError(f"unsupported image type .{suffix} (supported: {', '.join(IMAGE_EXTENSIONS)})")
        return data, ext, np.eye(3)
    decoded = decode_bytes(data)
    if data[:2] == JPEG_START:
        return simplejpeg.encode_jpeg(decoded.image, quality=JPEG_QUALITY, colorspace="RGB"), "jpg", decoded.matrix
    buffer = io.BytesIO()
    Image.fromarray(decoded.image).save(buffer, format="PNG")
    return buffer.getvalue(), "png", decoded.matrix


def _encode_one(task: tuple[Path, str, list[np.ndarray], np.ndarray]) -> dict[str, bytes]:
    """One sample's members, minus the key: image bytes and annotation JSON (upright frame)."""
    path, name, polygons, ignore = task
    data = read_image_bytes(path)
    try:
        image, ext, matrix = _upright_bytes(data, path.suffix.lower().lstrip("."))
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{path}: {exc}") from None
    meta = {
        "name": name,
        "polygons": [transform_points(matrix, p).round(3).tolist() for p in polygons],
        "ignore": np.asarray(ignore, dtype=bool).tolist(),
        "matrix": matrix.tolist(),
    }
    return {ext: image, "json": json.dumps(meta).encode()}


def _tasks(root: Path, split: str) -> list[tuple[Path, str, list[np.ndarray], np.ndarray]]:
    image_dir, json_path = split_paths(root, split)
    images = load_annotations(json_path).images
    return [(image_dir / name, name, *annotation.polygons()) for name, annotation in images.items()]


def write_shards(
    root: str | Path, split: str, out: str | Path, shard_size: int, workers: int | None = None
) -> dict[str, int]:
    """Write split ``split`` of data set ``root`` as ``out/<split>-NNNNNN.tar`` shards of about ``shard_size``
    bytes each, in annotation order, and record them in ``out/index.json``; returns {shard name: samples}.

    Images are checked (decoded) and put upright on ``workers`` processes (default: all cores). Shards are
    written into a temporary folder and moved into place when all are done; the index is replaced last
    (atomically), then shards of ``split`` it no longer lists are removed.
    """
    root, out = Path(root), Path(out)
    tasks = _tasks(root, split)
    if not tasks:
        raise ShardError(f"{split_paths(root, split)[1]}: no images to shard")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{split}-", dir=out))
    try:
        counts = _write_tmp(tmp, split, tasks, shard_size, workers or usable_cores())
        for name in counts:
            (tmp / name).replace(out / name)
        _update_index(out, split, counts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for stale in out.glob(f"{split}-*.tar"):
        if re.fullmatch(rf"{re.escape(split)}-\d{{6}}\.tar", stale.name) and stale.name not in counts:
            stale.unlink()
    return counts


def _write_tmp(tmp: Path, split: str, tasks: list[Any], shard_size: int, workers: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    pattern = str(tmp / SHARD_PATTERN.format(split=split))
    with ordered_map(workers, chunksize=4) as mapper, wds.ShardWriter(pattern, maxsize=shard_size, verbose=0) as writer:
        for i, members in enumerate(mapper(_encode_one, tasks)):
            writer.write({"__key__": f"{i:09d}", **members})
            name = Path(writer.fname).name
            counts[name] = counts.get(name, 0) + 1
    return counts


def _update_index(out: Path, split: str, counts: dict[str, int]) -> None:
    """Set ``split``'s entry of ``out/index.json``, atomically."""
    path = out / INDEX
    index = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"version": 1, "splits": {}}
    index["splits"][split] = {"samples": sum(counts.values()), "shards": counts}
    atomic_write_text(path, json.dumps(index, indent=1))


def shard_name(url: str) -> str:
    """The shard's file name in a path or URL: ``train-000003.tar`` of ``pipe:aws s3 cp s3://b/train-000003.tar -``."""
    names = re.findall(r"[^/\s'\"]+\.tar\b", url)
    if not names:
        raise ShardError(f"{url}: no shard file name (*.tar) in this URL")
    return names[-1]


def read_index(url: str) -> dict[str, int]:
    """{shard name: samples} over all splits of an ``index.json`` (a path or any ``webdataset.gopen`` URL)."""
    try:
        with wds.gopen(url, "rb") as stream:
            index = json.loads(stream.read())
        return {name: int(n) for split in index["splits"].values() for name, n in split["shards"].items()}
    except FileNotFoundError:
        raise ShardError(f"{url}: shard index not found (written by `ocrdet shard` beside the shards)") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ShardError(f"{url}: not a shard index: {exc!r}") from None


def _check_member(url: str, member: tarfile.TarInfo) -> int:
    """The size cap of a regular file member with a safe name; ``ShardError`` otherwise."""
    name = member.name
    path = PurePosixPath(name)
    if not name or "\\" in name or "\0" in name or path.is_absolute() or ".." in path.parts:
        raise ShardError(f"{url}: member {name!r}: unsafe name (absolute, '..' or backslash)")
    if not member.isreg():
        raise ShardError(f"{url}: member {name!r} is a link or device, not a regular file")
    cap = MAX_JSON_BYTES if name.endswith(".json") else MAX_IMAGE_BYTES
    if member.size > cap:
        raise ShardError(f"{url}: member {name!r} has {member.size} bytes, over the limit of {cap}")
    return cap


def iter_members(stream: IO[bytes], url: str) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file in a tar stream, read one member at a time; directories are skipped."""
    last = None
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if member.isdir():
                    continue
                _check_member(url, member)
                data = tar.extractfile(member).read()
                if len(data) != member.size:
                    raise ShardError(f"{url}: member {member.name!r} is truncated")
                last = member.name
                yield member.name, data
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        after = f" after member {last!r}" if last else ""
        raise ShardError(f"{url}: corrupt or truncated tar{after}: {exc}") from None


def iter_raw_samples(members: Iterable[tuple[str, bytes]], url: str) -> Iterator[dict[str, bytes]]:
    """Group consecutive members by key (the name up to the first dot of its base name), as webdataset does."""
    current: dict[str, Any] | None = None
    for name, data in members:
        key, ext = wds.tariterators.base_plus_ext(name)
        if key is None:
            raise ShardError(f"{url}: member {name!r} has no extension")
        if current is not None and current["__key__"] != key:
            yield current
            current = None
        current = current or {"__key__": key}
        if ext.lower() in current:
            raise ShardError(f"{url}: sample {key!r} has two .{ext} members")
        current[ext.lower()] = data
    if current is not None:
        yield current


def parse_sample(raw: dict[str, bytes], url: str) -> EncodedSample:
    """A grouped sample (``iter_raw_samples``) -> EncodedSample; ``ShardError`` names what is missing or invalid."""
    key = raw["__key__"]
    images = [ext for ext in IMAGE_EXTENSIONS if ext in raw]
    if "json" not in raw or len(images) != 1:
        found = sorted(k for k in raw if k != "__key__")
        raise ShardError(f"{url}: sample {key!r} needs one image and one .json member, has {found}")
    try:
        meta = json.loads(raw["json"])
        polygons = [np.asarray(p, dtype=np.float32).reshape(-1, 2) for p in meta["polygons"]]
        ignore = np.asarray(meta["ignore"], dtype=bool).reshape(-1)
        matrix = np.asarray(meta["matrix"], dtype=np.float64).reshape(3, 3)
        name = str(meta["name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{url}: sample {key!r}: invalid annotation JSON: {exc!r}") from None
    if len(ignore) != len(polygons) or any(len(p) < 3 for p in polygons):
        raise ShardError(f"{url}: sample {key!r}: polygons need 3+ points and one ignore flag each")
    return EncodedSample(raw[images[0]], polygons, ignore, name, matrix, key)


def read_shard(url: str) -> Iterator[EncodedSample]:
    """The samples of one shard (a path or ``pipe:`` / ``http(s):`` URL), in order."""
    stream = wds.gopen(url, "rb")
    try:
        for raw in iter_raw_samples(iter_members(stream, url), url):
            yield parse_sample(raw, url)
    finally:
        stream.close()


def decode_sample(encoded: EncodedSample, long_side: int | None, url: str = "") -> Sample:
    """Decode upright, shrink to ``long_side`` (None: full size) and move the polygons, as ``load_sample`` does."""
    try:
        decoded = decode_bytes(encoded.data, min_long_side=long_side)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"{url}: sample {encoded.key!r} ({encoded.name}): {exc}") from None
    return shrink_sample(decoded, encoded.name, encoded.polygons, encoded.ignore, long_side, encoded.matrix)


@dataclass(frozen=True)
class ShardSource:
    """Shards (local paths or ``pipe:`` commands) as a source: their samples read in order, shard by shard (a
    stream has no random access), encoded (``read``, ``samples``: what DALI takes) or decoded into a ``Sample``
    (``decode``: upright, shrunk to ``long_side``, as ``FolderSource.get`` gives a file)."""

    urls: list[str]
    counts: list[int]
    """Samples per shard, from the shard index."""
    long_side: int | None = None
    skipped: list[Problem] = field(default_factory=list)
    """Always empty: ``write_shards`` checked (decoded) every image."""

    def __len__(self) -> int:
        return sum(self.counts)

    def read(self, shard: int, take: int) -> Iterator[EncodedSample]:
        """The first ``take`` samples of shard number ``shard``; ``ShardError`` when it holds fewer."""
        url, got = self.urls[shard], 0
        for encoded in itertools.islice(read_shard(url), take):
            got += 1
            yield encoded
        if got < take:
            raise ShardError(f"{url}: {got} samples, the index says {self.counts[shard]} (stale index?)")

    def samples(self) -> Iterator[EncodedSample]:
        """Every sample, in order."""
        return (encoded for url in self.urls for encoded in read_shard(url))

    def decode(self, encoded: EncodedSample) -> Sample:
        """The ``Sample`` of a sample read here."""
        return decode_sample(encoded, self.long_side)


def open_shards(pattern: str, index_url: str = "", long_side: int | None = None) -> ShardSource:
    """Expand a brace pattern (``shards/train-{000000..000009}.tar``) and look up each shard's count in the
    index (default: ``index.json`` beside the first shard, which must then be a local path)."""
    urls = wds.shardlists.expand_urls(pattern)
    if not urls:
        raise ShardError(f"{pattern!r}: no shard URLs")
    if not index_url:
        if "://" in urls[0] or urls[0].startswith("pipe:"):
            raise ShardError(f"{urls[0]}: give the shard index URL (data.shard_index) for remote shards")
        index_url = str(Path(urls[0]).parent / INDEX)
    index = read_index(index_url)
    missing = [url for url in urls if shard_name(url) not in index]
    if missing:
        raise ShardError(f"{index_url}: does not list {len(missing)} shard(s) of {pattern!r}, e.g. {missing[0]}")
    return ShardSource(urls, [index[shard_name(url)] for url in urls], long_side)
