"""Tiny fixtures for the web app: synthetic receipts, an untrained model checkpoint, a run directory, predictions."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from serve_client import local_client

from ocrdet.data.io.format import load_annotations, split_paths
from ocrdet.data.io.predictions import write_predictions
from ocrdet.data.io.synth import generate_dataset
from ocrdet.model.dbnet import ModelConfig
from ocrdet.model.postprocess import PostprocessConfig
from ocrdet.serve.app import open_workspace
from ocrdet.train.module import DBNetModule

SPLIT = "val"


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """4 validation receipts; seed 0 stores three of them with EXIF orientations 8, 6 and 2."""
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, 1, 4, seed=0)
    return root


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained small DBNet in the format ``load_checkpoint`` reads. Thresholds 0 make it detect at least
    one polygon on any image (its probabilities are all > 0), so there is always something to draw."""
    module = DBNetModule(
        ModelConfig(backbone="resnet10t", inner_channels=16, neck_channels=16),
        postprocess=PostprocessConfig(thresh=0.0, box_thresh=0.0),
        eval_size=128,
        eval_workers=0,
    )
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, checkpoint: Path) -> Path:
    """A run as ``ocrdet train`` leaves it (logs written by Lightning's CSVLogger, a resumed second version),
    with a checkpoint and one bench table and chart."""
    run = tmp_path_factory.mktemp("run")
    for version, steps in enumerate((range(0, 40, 10), range(40, 60, 10))):
        logger = CSVLogger(run, name="logs", version=version)
        for step in steps:
            logger.log_metrics({"train/loss": 5.0 - step / 20, "perf/samples_per_s": 10.0 + step}, step=step)
            logger.log_metrics({"perf/data_wait": 0.25}, step=step)
        logger.log_metrics({"val/hmean": 0.1 * (version + 1), "epoch": version}, step=steps[-1])
        logger.save()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.ckpt").symlink_to(checkpoint)
    (run / "bench").mkdir()
    (run / "bench" / "data.txt").write_text("pipeline   samples/s\nreference       12.0\nocrdet          96.0\n")
    Image.new("RGB", (40, 30), (200, 60, 60)).save(run / "bench" / "data.png")
    return run


@pytest.fixture(scope="session")
def predictions_file(tmp_path_factory, synth_root: Path) -> Path:
    """Predictions with every kind of outcome: image 0 perfect, image 1 half its words and one false
    positive, image 2 nothing, image 3 a single false positive."""
    images = load_annotations(split_paths(synth_root, SPLIT)[1]).images
    names = sorted(images)
    polys = {name: images[name].polygons()[0] for name in names}
    false_positive = np.array([[1, 1], [30, 1], [30, 12], [1, 12]], dtype=np.float32)
    predictions = {
        names[0]: polys[names[0]],
        names[1]: polys[names[1]][: len(polys[names[1]]) // 2] + [false_positive],
        names[2]: [],
        names[3]: [false_positive],
    }
    path = tmp_path_factory.mktemp("pred") / "preds.csv"
    write_predictions(predictions, path)
    return path


@pytest.fixture(scope="session")
def client(synth_root: Path, run_dir: Path, predictions_file: Path) -> TestClient:
    """The app over everything: data, predictions, the run (and through it the model)."""
    return local_client(open_workspace(run_dir, synth_root, SPLIT, predictions_file, None))


@pytest.fixture(scope="session")
def bomb_jpeg() -> bytes:
    """A small valid JPEG whose header claims 20000 x 20000 pixels (a decompression bomb's shape)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2
    return bytes(data)
