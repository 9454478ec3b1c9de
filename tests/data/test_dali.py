"""The DALI backend on the CPU (``device_id=None``): same geometry, targets and (nearly) the same pixels as ours."""

import gc
from dataclasses import replace

import numpy as np
import pytest
import torch
from tiny_training import TINY_TRAINING

pytest.importorskip("nvidia.dali", reason="data.backend=dali needs nvidia-dali-cuda120")

from ocrdet.data.config import DataConfig  # noqa: E402
from ocrdet.data.io.synth import generate_dataset  # noqa: E402
from ocrdet.data.loaders import dali  # noqa: E402
from ocrdet.data.loaders.dali import DaliLoader, EncodedFolder, GeometryItems, collate_encoded  # noqa: E402
from ocrdet.data.loaders.native import DetectionDataset, collate  # noqa: E402
from ocrdet.data.pipeline import make_datamodule  # noqa: E402
from ocrdet.data.sources.folder import FolderSource  # noqa: E402
from ocrdet.data.sources.shards import write_shards  # noqa: E402
from ocrdet.data.transforms import augment  # noqa: E402
from ocrdet.data.transforms.augment import AugmentConfig, brightness_contrast  # noqa: E402
from ocrdet.data.transforms.maps import MAP_KEYS  # noqa: E402

CONFIG = DataConfig(batch_size=4, eval_size=320, num_workers=0, augment=AugmentConfig(size=256))


@pytest.fixture(autouse=True)
def _free_dali_pipelines():
    """Collect each test's DALI pipelines when it ends: left to a garbage collection inside a later forked
    worker (prepare, DataLoader), a pipeline's ``__del__`` waits forever for threads the fork did not copy."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth")
    generate_dataset(path, 4, 6, seed=4)
    return path


def _ours_and_dali(root, split, train):
    ours = DetectionDataset(
        FolderSource(root, split, CONFIG.cache_long_side), train, CONFIG.augment, CONFIG.targets, 320
    )
    theirs = EncodedFolder(FolderSource(root, split), GeometryItems(train, CONFIG))
    n = len(ours)
    torch.manual_seed(7)
    reference = collate([ours[i] for i in range(n)])
    torch.manual_seed(7)
    geometry = collate_encoded([theirs[i] for i in range(n)])
    size = CONFIG.augment.size if train else CONFIG.eval_size
    (batch,) = list(DaliLoader([geometry], train, size, n, threads=1))
    return reference, batch


@pytest.mark.parametrize("split, train", [("val", False), ("train", True)])
def test_dali_matches_our_path(root, split, train):
    """Letterbox (validation) and the seeded training warp + jitter: the same maps, polygons and matrices, and
    images within a few grey levels (libjpeg vs DALI's decoder, antialiased resize vs INTER_AREA)."""
    ours, dali = _ours_and_dali(root, split, train)
    assert dali["image"].dtype == torch.uint8 and dali["image"].shape == ours["image"].shape
    diff = (dali["image"].int() - ours["image"].int()).abs().float()
    assert diff.mean() < 2.0, diff.mean()
    assert (diff > 40).float().mean() < 0.01
    for key in MAP_KEYS:
        torch.testing.assert_close(dali[key], ours[key], atol=1e-4, rtol=0)
    assert dali["name"] == ours["name"]
    for a, b in zip(dali["matrix"], ours["matrix"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for polys_a, polys_b in zip(dali["polygons"], ours["polygons"], strict=True):
        for a, b in zip(polys_a, polys_b, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-3)


def _darken(image, gain):
    return brightness_contrast(image, gain, 0.0)


def _dali_darken(image, params):
    from nvidia.dali import fn

    return fn.brightness_contrast(image, brightness=params[0], contrast=1.0)


def test_a_new_colour_op_is_one_row_that_both_paths_apply(root, monkeypatch):
    """A colour augmentation added to ``COLOUR_OPS`` alone reaches the native path and DALI alike."""
    darken = augment.ColourOp("darken", lambda rng, config: (rng.uniform(0.3, 0.5),), _darken, _dali_darken)
    ops = (*augment.COLOUR_OPS, darken)
    monkeypatch.setattr(augment, "COLOUR_OPS", ops)
    monkeypatch.setattr(dali, "COLOUR_OPS", ops)
    ours, theirs = _ours_and_dali(root, "train", True)
    diff = (theirs["image"].int() - ours["image"].int()).abs().float()
    assert diff.mean() < 2.0, diff.mean()
    monkeypatch.setattr(augment, "COLOUR_OPS", ops[:1])
    monkeypatch.setattr(dali, "COLOUR_OPS", ops[:1])
    plain, _ = _ours_and_dali(root, "train", True)
    assert ours["image"].float().mean() < 0.6 * plain["image"].float().mean()  # the new step ran


def _folder_module(config, root):
    return make_datamodule(replace(config, root=str(root), backend="dali"), seed=0)


def test_folder_datamodule_batches(root):
    module = _folder_module(CONFIG, root)
    loader = module.val_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    assert batches[0]["image"].shape == (2, 320, 320, 3) and batches[0]["prob"].shape == (2, 320, 320)
    assert next(iter(module.train_dataloader()))["image"].shape == (4, 256, 256, 3)


def test_dali_over_shards(root, tmp_path):
    write_shards(root, "train", tmp_path, 10**9, workers=1)
    write_shards(root, "val", tmp_path, 10**9, workers=1)
    urls = {"urls": str(tmp_path / "train-000000.tar"), "val_urls": str(tmp_path / "val-000000.tar")}
    module = make_datamodule(replace(CONFIG, backend="dali", **urls), seed=0)
    batch = next(iter(module.train_dataloader()))
    assert batch["image"].shape == (4, 256, 256, 3)
    assert set(batch) == {"image", *MAP_KEYS, "name", "polygons", "ignore", "matrix", "skipped"}
    names = [n for b in module.val_dataloader() for n in b["name"]]
    assert sorted(names) == [f"val_{i:05d}.jpg" for i in range(6)]


def test_training_streams_shards_through_dali(root, tmp_path):
    """``data=webdataset data.backend=dali`` end to end: one epoch of training and validation."""
    from ocrdet.train.config import compose
    from ocrdet.train.run import fit

    write_shards(root, "train", tmp_path / "shards", 10**9, workers=1)
    write_shards(root, "val", tmp_path / "shards", 10**9, workers=1)
    overrides = [
        "data=webdataset",
        f"data.urls='{tmp_path}/shards/train-{{000000..000000}}.tar'",
        f"data.val_urls={tmp_path}/shards/val-000000.tar",
        "data.backend=dali",
        f"run_dir={tmp_path / 'run'}",
        *TINY_TRAINING,
    ]
    assert fit(compose(overrides)).exists()
    metrics = (tmp_path / "run" / "logs" / "version_0" / "metrics.csv").read_text()
    assert "val/hmean" in metrics.splitlines()[0]


def test_folder_datamodule_checks_the_data_first(root, tmp_path):
    """A broken image stops ``on_bad_sample=error`` before any batch, and ``skip`` leaves it out and reports it."""
    import shutil

    from ocrdet.data.check import DataCheckError

    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    (copy / "images" / "val" / "val_00002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataCheckError, match="unusable"):
        _folder_module(CONFIG, copy)
    module = _folder_module(replace(CONFIG, on_bad_sample="skip"), copy)
    names = [n for batch in module.val_dataloader() for n in batch["name"]]
    assert sorted(names) == [f"val_{i:05d}.jpg" for i in range(6) if i != 2]
    assert [p.file for p in module.skipped()["val"]] == ["val_00002.jpg"] and module.skipped()["train"] == []


def test_folder_datamodule_skips_an_image_with_invalid_annotations(root, tmp_path):
    """With ``skip``, one image's bad word leaves that image out; the rest of the annotation file still loads."""
    import json
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    path = copy / "jsons" / "val.json"
    data = json.loads(path.read_text())
    word = next(iter(data["images"]["val_00001.jpg"]["words"].values()))
    word["points"] = word["points"][:2]
    path.write_text(json.dumps(data))
    module = _folder_module(replace(CONFIG, on_bad_sample="skip"), copy)
    names = [n for batch in module.val_dataloader() for n in batch["name"]]
    assert sorted(names) == [f"val_{i:05d}.jpg" for i in range(6) if i != 1]
    assert [p.file for p in module.skipped()["val"]] == ["val_00001.jpg"]
