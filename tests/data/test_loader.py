import numpy as np
import torch
from torch.utils.data import DataLoader

from ocrdet.data.augment import AugmentConfig
from ocrdet.data.format import load_annotations
from ocrdet.data.loader import MAP_KEYS, DetectionDataset, collate
from ocrdet.data.orientation import transform_points
from ocrdet.data.sources import FolderSource
from ocrdet.data.targets import TargetConfig


def test_sroie_through_the_real_loader(shared_data):
    source = FolderSource(shared_data / "sroie", "val", long_side=1024)
    train = DetectionDataset(source, True, AugmentConfig(size=320), TargetConfig())
    batch = next(iter(DataLoader(train, batch_size=4, num_workers=2, collate_fn=collate)))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (4, 320, 320, 3)
    for key in MAP_KEYS:
        assert batch[key].shape == (4, 320, 320) and batch[key].dtype == torch.float32
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
