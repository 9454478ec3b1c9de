"""DDP: the validation H-mean of 2 CPU processes (gloo) equals the single-process one on the same data."""

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ocrdet.data.io.synth import generate_dataset
from ocrdet.data.loaders.native import DetectionDataset, collate
from ocrdet.data.sources.folder import FolderSource
from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.data.transforms.targets import TargetConfig
from ocrdet.eval.evaluate import total
from ocrdet.model.dbnet import ModelConfig
from ocrdet.train.module import DBNetModule, gather_per_image

EVAL_SIZE = 640


class PartialOracle(Dataset):
    """Validation items whose "image" is the ground-truth text map with its lower part blanked, so that
    detections find some words and miss others, differently per image."""

    def __init__(self, root):
        self.items = DetectionDataset(
            FolderSource(root, "val", 1024), False, AugmentConfig(), TargetConfig(), EVAL_SIZE
        )

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        item = self.items[index]
        prob = item["prob"].clone()
        prob[int(EVAL_SIZE * (0.35 + 0.1 * index)) :] = 0
        return {**item, "image": prob}


class MapModule(DBNetModule):
    """The real validation step and metric aggregation, with the "image" taken as the probability map."""

    def forward(self, images):
        return {"prob": images[:, None]}


def _validate(root, devices):
    module = MapModule(ModelConfig(inner_channels=16, neck_channels=16), eval_size=EVAL_SIZE, eval_workers=0)
    loader = DataLoader(PartialOracle(root), batch_size=1, collate_fn=collate)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    (metrics,) = trainer.validate(module, dataloaders=loader, verbose=False)
    return metrics, module


def test_two_process_hmean_equals_single_process(tmp_path):
    generate_dataset(tmp_path, 0, 5, seed=2)
    single, module = _validate(tmp_path, 1)
    per_image = module.evaluator.per_image()
    assert 0.2 < single["val/hmean"] < 0.95, "a partial oracle: some words found, some missed"
    padded = total(per_image + per_image[:1], "hmean").metrics()
    assert padded["recall"] != pytest.approx(single["val/recall"]), "counting the padded repeat would show"

    ddp, _ = _validate(tmp_path, 2)
    for key in ("val/hmean", "val/precision", "val/recall", "val/gt_care", "val/matched"):
        assert ddp[key] == pytest.approx(single[key]), key


def test_gather_outside_ddp_is_the_identity():
    assert not torch.distributed.is_initialized()
    counts = {"a.jpg": np.int64(1)}
    assert gather_per_image(counts) is counts
