import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ocrdet.data.check import DataCheckError, OnBadSample
from ocrdet.data.config import DataConfig
from ocrdet.data.io.decode import ImageDecodeError, transform_points
from ocrdet.data.io.format import AnnotationError, load_annotations
from ocrdet.data.loaders.native import BadSampleError, DetectionDataset, collate, init_worker
from ocrdet.data.sources.folder import FolderSource, open_folder
from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.data.transforms.maps import MAP_DTYPES, MAP_KEYS
from ocrdet.data.transforms.targets import TargetConfig


def test_sroie_through_the_real_loader(shared_data):
    source = FolderSource(shared_data / "sroie", "val", long_side=1024)
    train = DetectionDataset(source, True, AugmentConfig(size=320), TargetConfig())
    batch = next(iter(DataLoader(train, batch_size=4, num_workers=2, collate_fn=collate)))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (4, 320, 320, 3)
    for key in MAP_KEYS:
        assert batch[key].shape == (4, 320, 320) and batch[key].numpy().dtype == MAP_DTYPES[key]
    assert batch["prob"].sum() > 0, "real receipts have text in their crops"
    assert ((batch["thresh"] >= 0.3 - 1e-6) & (batch["thresh"] <= 0.7 + 1e-6)).all()


def test_validation_items_map_back_to_the_annotation_frame(shared_data):
    source = FolderSource(shared_data / "sroie", "val", long_side=1024)
    val = DetectionDataset(source, False, AugmentConfig(), TargetConfig(), eval_size=640)
    item = val[0]
    assert item["image"].shape == (640, 640, 3)
    gt = load_annotations(shared_data / "sroie" / "jsons" / "val.json").images[item["name"]]
    stored, _ = gt.polygons()
    for original, network in zip(stored, item["polygons"], strict=True):
        np.testing.assert_allclose(transform_points(item["matrix"], original), network, atol=1e-3)
    assert item["prob"].sum() > 0


SMALL = AugmentConfig(size=32)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_sample_that_fails_at_read_time_is_named(tiny):
    source = FolderSource(tiny, "train")
    _truncate(tiny / "images" / "train" / "b.jpg")
    dataset = DetectionDataset(source, True, SMALL, TargetConfig())
    with pytest.raises(ImageDecodeError, match="b.jpg: corrupt JPEG"):
        dataset[1]


class _BrokenPolygons:
    """A source whose second sample has a polygon the target maps refuse."""

    def __init__(self, source):
        self.source, self.names, self.skipped = source, source.names, []

    def __len__(self):
        return len(self.source)

    def get(self, index):
        sample = self.source.get(index)
        if index == 1:
            sample.polygons[0][0, 0] = np.nan
        return sample


def test_any_failure_of_a_sample_names_its_file(tiny):
    dataset = DetectionDataset(_BrokenPolygons(FolderSource(tiny, "train")), False, SMALL, TargetConfig(), 64)
    with pytest.raises(BadSampleError, match="b.jpg: ValueError: polygon 0"):
        dataset[1]
    skipping = DetectionDataset(_BrokenPolygons(FolderSource(tiny, "train")), False, SMALL, TargetConfig(), 64, "skip")
    assert skipping[1]["name"] == "c.jpg"


def test_skip_takes_the_next_readable_sample_and_records_the_bad_one(tiny):
    source = FolderSource(tiny, "train")
    for name in ("b.jpg", "c.jpg"):
        _truncate(tiny / "images" / "train" / name)
    dataset = DetectionDataset(source, False, SMALL, TargetConfig(), eval_size=32, on_bad_sample="skip")
    first = dataset[1]
    assert first["name"] == "a.jpg" and first["image"].shape == (32, 32, 3)
    assert [entry["file"] for entry in first["skipped"]] == ["b.jpg", "c.jpg"]
    assert "Premature end of JPEG file" in first["skipped"][0]["reason"]
    again = dataset[2]
    assert again["name"] == "a.jpg" and again["skipped"] == [], "known bad samples are not tried or recorded again"
    np.testing.assert_array_equal(again["image"], dataset[0]["image"])


def test_nothing_readable_is_an_error_even_with_skip(tiny):
    source = FolderSource(tiny, "train")
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (tiny / "images" / "train" / name).write_bytes(b"")
    with pytest.raises(BadSampleError, match="none of the 3 samples could be read"):
        DetectionDataset(source, True, SMALL, TargetConfig(), on_bad_sample="skip")[0]


def test_workers_survive_a_file_broken_after_the_check(tiny):
    source = open_folder(tiny, "train", 64, "skip", workers=1)
    _truncate(tiny / "images" / "train" / "b.jpg")
    dataset = DetectionDataset(source, True, SMALL, TargetConfig(), on_bad_sample="skip")
    loader = DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=collate, worker_init_fn=init_worker)
    batches = list(loader)
    assert [b["name"][0] for b in batches] == ["a.jpg", "c.jpg", "c.jpg"]
    assert [e["file"] for b in batches for e in b["skipped"]] == ["b.jpg"]


def test_open_folder_applies_the_policy(tiny):
    (tiny / "images" / "train" / "a.jpg").write_bytes(b"")
    with pytest.raises(DataCheckError, match="a.jpg: empty file"):
        open_folder(tiny, "train", 64, "error", workers=1)
    source = open_folder(tiny, "train", 64, "skip", workers=1)
    assert source.names == ["b.jpg", "c.jpg"] and [p.file for p in source.skipped] == ["a.jpg"]
    assert "2 images decoded on the fly (no cache), 1 left out by the check" in source.summary()
    with pytest.raises(AnnotationError, match="no valid annotations"):
        FolderSource(tiny, "train", names=["b.jpg", "zzz.jpg"])


def test_on_bad_sample_is_validated_once_into_an_enum():
    with pytest.raises(ValueError, match="data.on_bad_sample must be one of"):
        DataConfig(on_bad_sample="ignore")
    assert DataConfig(on_bad_sample="skip").on_bad_sample is OnBadSample.SKIP


def _augmented_by_name(loader: DataLoader, epochs: int) -> dict[str, list[bytes]]:
    seen: dict[str, list[bytes]] = {}
    for _ in range(epochs):
        for batch in loader:
            for name, image in zip(batch["name"], batch["image"], strict=True):
                seen.setdefault(name, []).append(image.numpy().tobytes())
    return seen


def test_persistent_workers_draw_new_augmentations_every_epoch(tiny):
    dataset = DetectionDataset(FolderSource(tiny, "train"), True, SMALL, TargetConfig())

    def run() -> dict[str, list[bytes]]:
        torch.manual_seed(0)
        loader = DataLoader(dataset, batch_size=1, num_workers=2, persistent_workers=True, collate_fn=collate)
        return _augmented_by_name(loader, epochs=4)

    first = run()
    assert sorted(first) == ["a.jpg", "b.jpg", "c.jpg"]
    for name, images in first.items():
        assert len(images) == 4 and len(set(images)) == 4, f"{name}: an augmentation came back in a later epoch"
    assert run() == first, "the same seed gives the same augmentations"


def test_the_main_process_draws_new_augmentations_every_epoch(tiny):
    dataset = DetectionDataset(FolderSource(tiny, "train"), True, SMALL, TargetConfig())
    torch.manual_seed(1)
    seen = _augmented_by_name(DataLoader(dataset, batch_size=2, collate_fn=collate), epochs=3)
    assert all(len(set(images)) == 3 for images in seen.values())
