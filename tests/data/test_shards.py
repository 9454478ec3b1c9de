import io
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
from torch.utils.data import DataLoader

from ocrdet.data.config import DataConfig
from ocrdet.data.io.decode import ImageDecodeError
from ocrdet.data.io.synth import generate_dataset
from ocrdet.data.loaders.stream import ShardItems, ShardStream, allocate, batches_per_rank, train_plan
from ocrdet.data.sources import shards
from ocrdet.data.sources.folder import FolderSource
from ocrdet.data.sources.shards import (
    ShardError,
    ShardSource,
    decode_sample,
    open_shards,
    parse_size,
    read_index,
    read_shard,
    write_shards,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth")
    generate_dataset(path, 24, 5, seed=3)
    return path


@pytest.fixture(scope="module")
def shard_dir(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_shards(root, "train", out, 150_000, workers=2)
    write_shards(root, "val", out, 10**9, workers=1)
    return out


def test_parse_size():
    assert parse_size("500MB") == 500_000_000
    assert parse_size("1GB") == 10**9
    assert parse_size("64KiB") == 65536
    assert parse_size("1000") == 1000
    for bad in ("lots", "5XB", "0MB"):
        with pytest.raises(ValueError, match="shard size"):
            parse_size(bad)


def test_shards_hold_every_sample_once_and_respect_the_size(root, shard_dir):
    counts = read_index(str(shard_dir / "index.json"))
    train = {n: c for n, c in counts.items() if n.startswith("train-")}
    assert sum(train.values()) == 24 and len(train) > 3
    largest_image = max(p.stat().st_size for p in (root / "images" / "train").iterdir())
    for name in train:
        assert (shard_dir / name).stat().st_size <= 150_000 + largest_image + 20_000
    keys = [e.key for name in sorted(train) for e in read_shard(str(shard_dir / name))]
    assert keys == [f"{i:09d}" for i in range(24)]


def test_shards_decode_to_what_the_folder_gives(root, shard_dir):
    """Upright storage: same polygons and matrix (annotation frame -> image) as the folder source, the same
    pixels for files without EXIF orientation, re-encoded ones (q95) close."""
    folder = FolderSource(root, "train", long_side=1024)
    expected = {name: folder.get(i) for i, name in enumerate(folder.names)}
    rotated, source = 0, open_shards(_train_pattern(shard_dir), long_side=1024)
    assert len(source) == len(folder) and source.skipped == []
    for encoded in source.samples():
        sample, ref = source.decode(encoded), expected[encoded.name]
        np.testing.assert_allclose(sample.matrix, ref.matrix, atol=1e-9)
        for got, want in zip(sample.polygons, ref.polygons, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-3)
        original = (root / "images" / "train" / encoded.name).read_bytes()
        if np.allclose(encoded.matrix, np.eye(3)):
            assert encoded.data == original
            np.testing.assert_array_equal(sample.image, ref.image)
        else:
            rotated += 1
            assert sample.image.shape == ref.image.shape
            assert np.abs(sample.image.astype(int) - ref.image.astype(int)).mean() < 3
    assert rotated > 0, "the synthetic set has EXIF-rotated images"


def _train_pattern(shard_dir):
    last = max(p.name for p in shard_dir.glob("train-*.tar"))[len("train-") : -len(".tar")]
    return str(shard_dir / f"train-{{000000..{last}}}.tar")


def test_a_shard_source_reads_a_shard_and_names_a_stale_index(shard_dir):
    source = open_shards(_train_pattern(shard_dir))
    first = [e.key for e in source.read(1, 2)]
    assert first == [e.key for e in read_shard(source.urls[1])][:2]
    stale = ShardSource(source.urls, [n + 1 for n in source.counts])  # an index written for other shards
    n = source.counts[1]
    with pytest.raises(ShardError, match=rf"train-000001.tar: {n} samples, the index says {n + 1} \(stale index"):
        list(stale.read(1, n + 1))


def test_rewriting_replaces_shards_and_keeps_other_splits(root, tmp_path):
    write_shards(root, "train", tmp_path, 100_000, workers=1)
    many = sorted(p.name for p in tmp_path.glob("train-*.tar"))
    write_shards(root, "val", tmp_path, 10**9, workers=1)
    write_shards(root, "train", tmp_path, 10**9, workers=1)
    assert sorted(p.name for p in tmp_path.glob("train-*.tar")) == ["train-000000.tar"] and len(many) > 1
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["splits"]["train"] == {"samples": 24, "shards": {"train-000000.tar": 24}}
    assert index["splits"]["val"]["samples"] == 5
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_bad_image_names_the_file_and_keeps_existing_shards(root, tmp_path):
    write_shards(root, "val", tmp_path / "out", 10**9, workers=1)
    before = (tmp_path / "out" / "val-000000.tar").read_bytes()
    broken = tmp_path / "broken"
    generate_dataset(broken, 0, 3, seed=5)
    victim = sorted((broken / "images" / "val").iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(ImageDecodeError, match=victim.name):
        write_shards(broken, "val", tmp_path / "out", 10**9, workers=1)
    assert (tmp_path / "out" / "val-000000.tar").read_bytes() == before
    assert not list((tmp_path / "out").glob(".tmp-*"))


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return str(path)


GOOD_JSON = json.dumps(
    {"name": "a.jpg", "polygons": [[[0, 0], [4, 0], [4, 4]]], "ignore": [False], "matrix": np.eye(3).tolist()}
)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../evil.jpg", b"x", tarfile.REGTYPE)], "unsafe name"),
        ([("/abs.jpg", b"x", tarfile.REGTYPE)], "unsafe name"),
        ([("k.jpg", b"", tarfile.SYMTYPE)], "not a regular file"),
        ([("k.json", b"{", tarfile.REGTYPE), ("k.jpg", b"x", tarfile.REGTYPE)], "invalid annotation JSON"),
        ([("k.jpg", b"x", tarfile.REGTYPE)], "needs one image and one .json"),
        ([("k.json", GOOD_JSON.encode(), tarfile.REGTYPE), ("k.json", b"{}", tarfile.REGTYPE)], "two .json"),
    ],
)
def test_unsafe_or_broken_members_are_refused(tmp_path, members, message):
    url = _tar(tmp_path / "bad.tar", [(n, d if isinstance(d, bytes) else d.encode(), k) for n, d, k in members])
    with pytest.raises(ShardError, match=message) as info:
        list(read_shard(url))
    assert "bad.tar" in str(info.value)


def test_oversized_members_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "MAX_IMAGE_BYTES", 100)
    url = _tar(tmp_path / "big.tar", [("k.jpg", b"x" * 101, tarfile.REGTYPE)])
    with pytest.raises(ShardError, match=r"'k.jpg' has 101 bytes, over the limit of 100"):
        list(read_shard(url))


def test_truncated_shards_and_undecodable_images_are_named(shard_dir, tmp_path):
    whole = (shard_dir / "val-000000.tar").read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ShardError, match=r"cut.tar: corrupt or truncated tar after member"):
        list(read_shard(str(cut)))
    members = [("k.jpg", b"\xff\xd8junk", tarfile.REGTYPE), ("k.json", GOOD_JSON.encode(), tarfile.REGTYPE)]
    url = _tar(tmp_path / "junk.tar", members)
    (encoded,) = read_shard(url)
    with pytest.raises(ImageDecodeError, match=r"junk.tar: sample 'k' \(a.jpg\)"):
        decode_sample(encoded, 1024, url)


def test_pipe_urls_and_the_index(shard_dir):
    pattern = f"pipe:cat {shard_dir}/train-{{000000..000001}}.tar"
    with pytest.raises(ShardError, match="data.shard_index"):
        open_shards(pattern)
    found = open_shards(pattern, str(shard_dir / "index.json"))
    index = read_index(str(shard_dir / "index.json"))
    assert found.counts == [index["train-000000.tar"], index["train-000001.tar"]]
    assert len(list(read_shard(found.urls[1]))) == found.counts[1]
    with pytest.raises(ShardError, match="does not list"):
        open_shards(str(shard_dir / "train-{000000..000999}.tar"))


def test_allocate_and_plan_never_exceed_capacity():
    assert allocate(5, [3, 3]) == [3, 2] or allocate(5, [3, 3]) == [2, 3]
    assert sum(allocate(7, [0, 4, 5])) == 7 and allocate(7, [0, 4, 5])[0] == 0
    counts = [7, 9, 3, 8, 8, 2, 6]
    n = batches_per_rank(counts, 2, 2, 2)
    for rank in range(2):
        for epoch in range(3):
            plans = [train_plan(counts, epoch, 0, rank, 2, w, 2, 2) for w in range(2)]
            assert sum(take for plan in plans for _, take in plan) == 2 * n
            assert all(take <= counts[i] and i % 2 == rank for plan in plans for i, take in plan)
    with pytest.raises(ShardError, match="one shard per rank"):
        batches_per_rank([5], 2, 1, 1)


def _name(encoded):
    return {"name": encoded.name}


def _names(items):
    return [item["name"] for item in items]


def _epochs(shards_set, train, rank, world, workers=2, batch=2, epochs=2):
    stream = ShardStream(shards_set, train, _name, batch, workers, rank, world, shuffle_buffer=8, collate_fn=_names)
    loader = DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=True)
    out = [[list(b) for b in loader] for _ in range(epochs)]
    assert all(len(batches) == len(loader) for batches in out)
    return out


def test_two_ranks_two_workers_see_disjoint_equal_epochs(shard_dir):
    train = open_shards(_train_pattern(shard_dir))
    runs = {rank: _epochs(train, True, rank, 2) for rank in range(2)}
    for epoch in range(2):
        seen = {rank: [n for batch in runs[rank][epoch] for n in batch] for rank in range(2)}
        assert len(seen[0]) == len(seen[1]) > 0, "equal epochs per rank"
        assert len(runs[0][epoch]) == len(runs[1][epoch]), "equal batch counts per rank"
        for names in seen.values():
            assert len(set(names)) == len(names), "no sample twice on one rank"
        assert not set(seen[0]) & set(seen[1]), "no sample on both ranks"
        assert len(seen[0]) + len(seen[1]) >= len(train) - 2 * 2 * 2 * 2
    order = [[n for b in runs[0][e] for n in b] for e in range(2)]
    assert order[0] != order[1], "a new order every epoch"


def test_validation_reads_every_sample_with_equal_batches(shard_dir):
    val = open_shards(str(shard_dir / "val-000000.tar"))
    seen = {rank: [n for b in _epochs(val, False, rank, 2, epochs=1)[0] for n in b] for rank in range(2)}
    counts = Counter(seen[0] + seen[1])
    assert set(counts) == {f"val_{i:05d}.jpg" for i in range(5)}
    assert len(seen[0]) == len(seen[1])
    assert sum(c - 1 for c in counts.values()) == 2 * 2 * 2 - 5, "only the padding repeats"


def test_native_items_match_the_map_style_loader(root, shard_dir):
    config = DataConfig(eval_size=256)
    val = open_shards(str(shard_dir / "val-000000.tar"), long_side=config.cache_long_side)
    stream = ShardStream(val, False, ShardItems(val, False, config), 2, 0)
    batches = list(stream)
    assert len(batches) == len(stream) == 3
    batch = batches[0]
    assert batch["image"].shape == (2, 256, 256, 3) and batch["prob"].shape == (2, 256, 256)
    assert batch["name"] == ["val_00000.jpg", "val_00001.jpg"]


def test_the_webdataset_group_needs_shard_urls():
    from ocrdet.train.config import compose

    with pytest.raises(ValueError, match="data.urls and data.val_urls"):
        compose(["data=webdataset"])
    config = compose(["data=webdataset", "data.urls='s/train-{000000..000003}.tar'", "data.val_urls=s/val-000000.tar"])
    assert config.data.urls == "s/train-{000000..000003}.tar" and config.data.backend == "native"
    with pytest.raises(ValueError, match="data.backend"):
        compose(["data.backend=gpu"])
