import errno
import json
import os
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ocrdet.data.check import DataCheckError, check_dataset
from ocrdet.data.config import CacheConfig
from ocrdet.data.io.format import AnnotationError
from ocrdet.data.sources import cache as cache_module
from ocrdet.data.sources import prepare as prepare_module
from ocrdet.data.sources.cache import MANIFEST, TARGETS, CacheError, CacheSource, open_cache
from ocrdet.data.sources.folder import FolderSource
from ocrdet.data.sources.prepare import cache_key, estimate_bytes, prepare_cache
from ocrdet.data.transforms.augment import letterbox
from ocrdet.data.transforms.maps import MAP_KEYS
from ocrdet.data.transforms.targets import TargetConfig, make_db_targets

CONFIG = CacheConfig(long_side=320, eval_size=160, targets=TargetConfig(min_text_size=2.0))


def test_one_or_two_workers_write_the_same_files(pristine: Path, tmp_path: Path) -> None:
    one = prepare_cache(pristine, "train", tmp_path / "a", CONFIG, workers=1)
    two = prepare_cache(pristine, "train", tmp_path / "b", CONFIG, workers=2)
    assert one.name == two.name
    files = {name: (one / name).read_bytes() for name in os.listdir(one) if name != MANIFEST}
    assert files == {name: (two / name).read_bytes() for name in os.listdir(two) if name != MANIFEST}


def test_validation_cache_holds_letterboxed_images_and_their_maps(pristine: Path, tmp_path: Path) -> None:
    source = open_cache(prepare_cache(pristine, "val", tmp_path / "cache", CONFIG, workers=2, with_targets=True))
    folder = FolderSource(pristine, "val", decode_side=CONFIG.eval_size)  # decoded as predict decodes
    assert source.has_targets and len(source) == len(folder) == 3
    for i in range(len(folder)):
        sample, want = source.get(i), folder.get(i)
        image, polygons, scale = letterbox(want.image, want.polygons, CONFIG.eval_size)
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.matrix, np.diag([scale, scale, 1.0]) @ want.matrix)
        for got, expected in zip(sample.polygons, polygons, strict=True):
            np.testing.assert_array_equal(got, expected)
        maps = make_db_targets(polygons, want.ignore, CONFIG.eval_size, CONFIG.eval_size, CONFIG.targets)
        stored = source.targets(i)
        assert list(stored) == list(MAP_KEYS)
        for key in MAP_KEYS:
            assert stored[key].dtype == np.float16 and stored[key].shape == (CONFIG.eval_size, CONFIG.eval_size)
            # float16 keeps 0 and 1 exactly and values below 1 within half a unit of 2**-11.
            np.testing.assert_allclose(stored[key].astype(np.float32), maps[key], rtol=0, atol=2.5e-4)
        assert maps["prob"].any() and maps["thresh_mask"].any()


def test_training_cache_has_no_targets(pristine: Path, tmp_path: Path) -> None:
    source = CacheSource(prepare_cache(pristine, "train", tmp_path / "cache", CONFIG, workers=1))
    assert isinstance(source, CacheSource) and not source.has_targets
    assert not (source.path / TARGETS).exists()
    with pytest.raises(CacheError, match="no targets"):
        source.targets(0)


def test_key_covers_exactly_the_settings_that_matter(pristine: Path) -> None:
    names = FolderSource(pristine, "train").names

    def key(config: CacheConfig, with_targets: bool) -> str:
        return cache_key(pristine, "train", names, config, with_targets)[0]

    other_val = CacheConfig(long_side=320, eval_size=256, targets=TargetConfig(shrink_ratio=0.5))
    assert key(CONFIG, False) == key(other_val, False)
    assert key(CONFIG, True) != key(other_val, True)
    assert key(CONFIG, True) != key(CONFIG, False)
    assert key(CONFIG, False) != key(CacheConfig(long_side=640), False)
    assert cache_key(pristine, "train", names[:-1], CONFIG, False)[0] != key(CONFIG, False)


def test_a_new_targets_version_gives_validation_caches_a_new_key(pristine: Path, monkeypatch) -> None:
    """Changing the target algorithm (and bumping ``TARGETS_VERSION``) never reuses maps drawn by the old code."""
    names = FolderSource(pristine, "val").names
    before = {t: cache_key(pristine, "val", names, CONFIG, with_targets=t)[0] for t in (True, False)}
    monkeypatch.setattr(prepare_module, "TARGETS_VERSION", prepare_module.TARGETS_VERSION + 1)
    after = {t: cache_key(pristine, "val", names, CONFIG, with_targets=t)[0] for t in (True, False)}
    assert after[True] != before[True], "maps drawn by other code"
    assert after[False] == before[False], "training caches hold no maps"


def test_a_cache_written_before_this_format_is_stale_and_rebuilt(pristine: Path, tmp_path: Path, monkeypatch) -> None:
    """A cache of the previous format (version 2: no targets version in its key) is never found nor read."""
    with monkeypatch.context() as patch:
        patch.setattr(prepare_module, "CACHE_VERSION", 2)
        patch.setattr(cache_module, "CACHE_VERSION", 2)
        old = prepare_cache(pristine, "val", tmp_path / "cache", CONFIG, workers=1, with_targets=True)
    with pytest.raises(CacheError, match="cache format version 2"):
        open_cache(old)
    new = prepare_cache(pristine, "val", tmp_path / "cache", CONFIG, workers=1, with_targets=True)
    assert new != old and open_cache(new).has_targets


def test_manifest_records_inputs_counts_and_sizes(pristine: Path, tmp_path: Path) -> None:
    path = prepare_cache(pristine, "train", tmp_path / "cache", CONFIG, workers=1)
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["key"] == path.name and manifest["count"] == 4
    assert manifest["inputs"]["settings"] == {"long_side": 320} and manifest["inputs"]["split"] == "train"
    sizes = {name: (path / name).stat().st_size for name in os.listdir(path) if name != MANIFEST}
    assert {name: entry["bytes"] for name, entry in manifest["files"].items()} == sizes
    source = CacheSource(path)
    assert source.nbytes == sum(sizes.values()) and "4 images" in source.summary()


def test_bad_image_is_named_and_nothing_is_left(root: Path, tmp_path: Path) -> None:
    kept = prepare_cache(root, "train", tmp_path / "cache", CacheConfig(long_side=200), workers=1)
    (root / "images" / "train" / "train_00002.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DataCheckError, match="train_00002.jpg: corrupt JPEG"):
        prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=2)
    assert os.listdir(tmp_path / "cache") == [kept.name]
    open_cache(kept)


def test_every_problem_is_listed_before_anything_is_written(root: Path, tmp_path: Path) -> None:
    (root / "images" / "train" / "train_00001.jpg").unlink()
    (root / "images" / "train" / "train_00002.jpg").write_bytes(b"")
    with pytest.raises(DataCheckError) as error:
        prepare_cache(root, "train", tmp_path / "cache", CONFIG)
    message = str(error.value)
    assert "train_00001.jpg: listed in the annotations but not on disk" in message
    assert "train_00002.jpg: empty file" in message and "on_bad_sample=skip" in message
    assert not (tmp_path / "cache").exists()


def test_skip_leaves_bad_images_out_and_lists_them(root: Path, tmp_path: Path) -> None:
    (root / "images" / "train" / "train_00001.jpg").unlink()
    path = prepare_cache(root, "train", tmp_path / "cache", CONFIG, workers=2, on_bad_sample="skip")
    source = open_cache(path)
    assert source.names == ["train_00000.jpg", "train_00002.jpg", "train_00003.jpg"]
    assert [(p.kind, p.file) for p in source.skipped] == [("missing", "train_00001.jpg")]
    assert "3 images" in source.summary() and "1 images left out by the data check" in source.summary()
    folder = FolderSource(root, "train", long_side=CONFIG.long_side, names=source.names)
    np.testing.assert_array_equal(source.get(1).image, folder.get(1).image)
    # The same cache under on_bad_sample=error: found, but its skipped images stop the run.
    with pytest.raises(DataCheckError, match="train_00001.jpg"):
        prepare_cache(root, "train", tmp_path / "cache", CONFIG, on_bad_sample="error")
    assert prepare_cache(root, "train", tmp_path / "cache", CONFIG, on_bad_sample="skip") == path


def test_nothing_usable_is_an_error_even_with_skip(root: Path, tmp_path: Path) -> None:
    for image in (root / "images" / "val").iterdir():
        image.write_bytes(b"junk")
    with pytest.raises(DataCheckError, match="no usable image in split 'val'"):
        prepare_cache(root, "val", tmp_path / "cache", CONFIG, on_bad_sample="skip", with_targets=True)


def test_size_is_estimated_and_a_full_disk_refused(pristine: Path, tmp_path: Path, monkeypatch) -> None:
    path = prepare_cache(pristine, "train", tmp_path / "cache", CONFIG, workers=1)
    sizes = check_dataset(pristine, "train", workers=1).sizes.values()
    images = (path / "images.u8").stat().st_size
    assert images <= estimate_bytes(sizes, CONFIG, with_targets=False) <= images * 1.05
    val = prepare_cache(pristine, "val", tmp_path / "cache", CONFIG, workers=1, with_targets=True)
    val_sizes = check_dataset(pristine, "val", workers=1).sizes.values()
    stored = (val / "images.u8").stat().st_size + (val / TARGETS).stat().st_size
    assert stored - 256 <= estimate_bytes(val_sizes, CONFIG, with_targets=True) <= stored
    monkeypatch.setattr(shutil, "disk_usage", lambda _: SimpleNamespace(free=1000))
    with pytest.raises(CacheError, match=r"needs about 0\.\d+ GiB, only 0\.00 GiB are free"):
        prepare_cache(pristine, "train", tmp_path / "other", CONFIG, workers=1)
    assert [p.name for p in (tmp_path / "other").iterdir()] == []


def test_missing_or_bad_annotation_files_are_named(root: Path, tmp_path: Path) -> None:
    (root / "jsons" / "val.json").write_text("{")
    with pytest.raises(AnnotationError, match="val.json"):
        prepare_cache(root, "val", tmp_path / "cache", CONFIG)
    (root / "jsons" / "val.json").write_text('{"images": {}}')
    with pytest.raises(AnnotationError, match="no images"):
        prepare_cache(root, "val", tmp_path / "cache", CONFIG)


def test_crash_before_the_manifest_leaves_no_cache(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_cache(pristine, "train", tmp_path / "cache", CONFIG, workers=1)
    assert os.listdir(tmp_path / "cache") == []


def test_directories_of_dead_prepare_runs_are_removed(pristine: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    dead = cache_dir / f".tmp-abc-{socket.gethostname()}-999999999-x1"
    alive = cache_dir / f".tmp-abc-{socket.gethostname()}-{os.getpid()}-x2"
    for folder in (dead, alive):
        folder.mkdir(parents=True)
        (folder / "images.u8").write_bytes(b"half")
    prepare_cache(pristine, "train", cache_dir, CONFIG, workers=1)
    assert not dead.exists() and alive.exists()


def test_a_cache_published_meanwhile_by_another_process_is_kept(pristine: Path, tmp_path: Path) -> None:
    path = prepare_cache(pristine, "train", tmp_path / "cache", CONFIG, workers=1)
    racer = tmp_path / "cache" / ".tmp-racer"
    shutil.copytree(path, racer)
    stamp = (path / MANIFEST).stat().st_mtime_ns
    prepare_module._publish(racer, path, path.name)
    assert (path / MANIFEST).stat().st_mtime_ns == stamp and racer.exists()


def test_a_full_disk_while_writing_a_cache_names_the_cache(
    pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write: no file name

    monkeypatch.setattr(prepare_module, "_write_cache", full)
    with pytest.raises(OSError) as info:
        prepare_cache(pristine, "train", tmp_path / "cache", CONFIG, workers=1)
    assert info.value.errno == errno.ENOSPC and str(tmp_path / "cache") in info.value.filename
    assert os.listdir(tmp_path / "cache") == []
