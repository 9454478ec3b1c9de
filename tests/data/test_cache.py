import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ocrdet.data.config import CacheConfig, CacheKey
from ocrdet.data.sources import cache as cache_module
from ocrdet.data.sources.base import Sample
from ocrdet.data.sources.cache import (
    CACHE_VERSION,
    IMAGES,
    INDEX,
    MANIFEST,
    POINTS,
    WORDS,
    CacheError,
    CacheSource,
    open_cache,
)
from ocrdet.data.sources.folder import FolderSource
from ocrdet.data.sources.prepare import cache_key, prepare_cache

CONFIG = CacheConfig(long_side=320)


def _assert_same(got: Sample, want: Sample) -> None:
    assert got.name == want.name
    np.testing.assert_array_equal(got.image, want.image)
    np.testing.assert_array_equal(got.matrix, want.matrix)
    np.testing.assert_array_equal(got.ignore, want.ignore)
    assert len(got.polygons) == len(want.polygons)
    for a, b in zip(got.polygons, want.polygons, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def _assert_equals_folder(source: CacheSource, root: Path) -> None:
    folder = FolderSource(root, "train", long_side=CONFIG.long_side)
    assert source.names == folder.names and len(source) == len(folder)
    for i in range(len(folder)):
        _assert_same(source.get(i), folder.get(i))


def test_round_trip_equals_folder_source(root: Path, tmp_path: Path) -> None:
    source = open_cache(prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=2))
    _assert_equals_folder(source, root)
    image = source.get(0).image
    assert isinstance(image, np.memmap) and not image.flags.writeable
    assert source.get(0).ignore.dtype == bool and any(source.get(i).ignore.any() for i in range(len(source)))


def test_valid_cache_is_reused_not_rebuilt(root: Path, tmp_path: Path) -> None:
    path = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)
    stamp = (path / MANIFEST).stat().st_mtime_ns
    assert prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1) == path
    assert (path / MANIFEST).stat().st_mtime_ns == stamp


def test_changed_mtime_gives_a_new_cache_and_drops_the_old(root: Path, tmp_path: Path) -> None:
    old = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)
    image = root / "images" / "train" / "train_00003.jpg"
    info = image.stat()
    os.utime(image, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
    new = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)
    assert new != old and not old.exists()
    _assert_equals_folder(open_cache(new), root)


def test_changed_size_same_mtime_gives_a_new_cache(root: Path, tmp_path: Path) -> None:
    old = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)
    key = open_cache(old).manifest["key"]
    target = root / "images" / "train" / "train_00001.jpg"
    info = target.stat()
    with Image.open(target) as image:
        image.load()
        image.save(target, "JPEG", quality=50, exif=image.getexif())
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert target.stat().st_size != info.st_size
    new_key, _ = cache_key(root, "train", FolderSource(root, "train").names, CONFIG, with_targets=False)
    assert new_key != key
    with pytest.raises(CacheError, match="stale"):
        open_cache(old, key=new_key)
    _assert_equals_folder(open_cache(prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)), root)


def test_changed_annotations_or_settings_give_a_new_cache(root: Path, tmp_path: Path) -> None:
    first = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)
    smaller = prepare_cache(root, "train", tmp_path / "cache", CacheConfig(long_side=256), workers=1)
    assert smaller != first and first.exists(), "another setting is another valid cache, kept"
    assert max(open_cache(smaller).get(0).image.shape) == 256
    json_path = root / "jsons" / "train.json"
    json_path.write_text(json_path.read_text().replace('"0001"', '"0001b"', 1))
    assert prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1) != first


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 1)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _old_version(path: Path) -> None:
    path.write_text(path.read_text().replace(f'"version": {CACHE_VERSION}', '"version": 0', 1))


def _no_file_list(path: Path) -> None:
    path.write_text(f'{{"version": {CACHE_VERSION}}}')


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        (MANIFEST, Path.unlink, "no manifest"),
        (MANIFEST, _truncate, "unreadable manifest"),
        (MANIFEST, _old_version, "version 0"),
        (MANIFEST, _no_file_list, "lacks the file list"),
        (IMAGES, _truncate, "truncated"),
        (IMAGES, _flip_byte, "checksum"),
        (INDEX, _flip_byte, "checksum"),
        (WORDS, Path.unlink, "missing"),
        (POINTS, _flip_byte, "checksum"),
    ],
)
def test_damaged_cache_is_refused_and_rebuilt(root: Path, tmp_path: Path, name: str, damage, message: str) -> None:
    path = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)
    damage(path / name)
    with pytest.raises(CacheError, match=message) as error:
        open_cache(path)
    assert str(path) in str(error.value)
    assert prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1) == path
    _assert_equals_folder(open_cache(path), root)


def test_sampled_checksum_of_large_files(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "FULL_HASH_LIMIT", 1 << 16)
    monkeypatch.setattr(cache_module, "SAMPLE_BLOCK_BYTES", 1 << 10)
    path = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1)
    assert (path / IMAGES).stat().st_size > 1 << 16
    open_cache(path)
    data = bytearray((path / IMAGES).read_bytes())
    data[-1] ^= 0xFF
    (path / IMAGES).write_bytes(bytes(data))
    with pytest.raises(CacheError, match="checksum"):
        open_cache(path)


def test_pickles_small_and_reopens(root: Path, tmp_path: Path) -> None:
    source = open_cache(prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1))
    source.get(0)
    data = pickle.dumps(source)
    assert len(data) < 300
    clone = pickle.loads(data)
    assert clone._arrays is None
    _assert_same(clone.get(2), source.get(2))


class _Fingerprints(Dataset):
    """Per item: index, blake2b of the image bytes, whether it is a read-only memmap of the cache file, pid."""

    def __init__(self, source: CacheSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[int, str, bool, int]:
        image = self.source.get(index).image
        mapped = str((self.source.path / IMAGES).resolve()) in Path("/proc/self/maps").read_text()
        shared = isinstance(image, np.memmap) and not image.flags.writeable and mapped
        return index, hashlib.blake2b(image.tobytes()).hexdigest(), shared, os.getpid()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_dataloader_workers_share_the_memmap(root: Path, tmp_path: Path, context: str) -> None:
    source = open_cache(prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=1))
    want = {i: hashlib.blake2b(source.get(i).image.tobytes()).hexdigest() for i in range(len(source))}
    rows = list(DataLoader(_Fingerprints(source), batch_size=None, num_workers=2, multiprocessing_context=context))
    assert sorted(r[0] for r in rows) == list(range(len(source)))
    assert all(want[i] == digest and shared for i, digest, shared, _ in rows)
    assert len({pid for *_, pid in rows} - {os.getpid()}) == 2
    assert torch.utils.data.get_worker_info() is None


def test_missing_directory_is_a_cache_error(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="no manifest"):
        open_cache(tmp_path / "nothing")


def test_same_size_replacement_with_mtime_restored_needs_the_content_key(root: Path, tmp_path: Path) -> None:
    """The stat key cannot see it (same name, size and time); ``data.cache_key=content`` hashes the bytes."""
    names = FolderSource(root, "train").names
    content = CacheConfig(long_side=320, key=CacheKey.CONTENT)
    before = {c: cache_key(root, "train", names, c, with_targets=False)[0] for c in (CONFIG, content)}
    target = root / "images" / "train" / names[1]
    info = target.stat()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other pixels
    target.write_bytes(bytes(data))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    after = {c: cache_key(root, "train", names, c, with_targets=False)[0] for c in (CONFIG, content)}
    assert after[CONFIG] == before[CONFIG]  # what data.cache_key=stat (the default) cannot tell
    assert after[content] != before[content]


def test_prepare_verify_finds_bytes_the_sampled_checksum_misses_and_rebuilds(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from ocrdet.cli import main

    monkeypatch.setattr(cache_module, "FULL_HASH_LIMIT", 1 << 16)  # hash images.u8 through samples, as for SROIE
    monkeypatch.setattr(cache_module, "SAMPLE_BLOCKS", 2)
    argv = ["prepare", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.cache_long_side=320"]
    main(argv)
    path = next(p for p in (tmp_path / "cache").iterdir() if not open_cache(p).has_targets)
    source = open_cache(path)
    record = np.load(path / INDEX)[2]
    middle = int(record["offset"]) + int(record["height"]) * int(record["width"]) * 3 // 2
    with open(path / IMAGES, "r+b") as f:  # zero 4 KiB inside image 2, between the sampled blocks
        f.seek(middle)
        f.write(bytes(4096))
    open_cache(path)  # the sampled checksum accepts it
    capsys.readouterr()
    main([*argv, "--verify"])
    out = capsys.readouterr().out
    assert f"{path}: 1 image does not match its checksum ({source.names[2]}); rebuilding" in out
    assert "every image matches its checksum" in out  # the validation cache
    _assert_equals_folder(open_cache(path), root)
    main([*argv, "--verify"])
    assert f"{path}: every image matches its checksum" in capsys.readouterr().out
