"""``ocrdet train ... init=CKPT``: a new run that starts from a checkpoint's model weights (fine-tuning), with a
fresh step count, optimizer and schedule, reading the file as data and fetching nothing."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from tiny_training import TINY_TRAINING

from ocrdet.checkpoint import CheckpointError
from ocrdet.cli import main
from ocrdet.model import backbone
from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.train.checkpointing import load_model_weights
from ocrdet.train.config import compose
from ocrdet.train.run import fit

TINY_MODEL = ModelConfig(inner_channels=16, neck_channels=16)
"""The model of ``TINY_TRAINING``."""


def saved(path: Path, config: ModelConfig, global_step: int = 1000) -> tuple[Path, DBNet]:
    """A checkpoint of a freshly built DBNet that says it was trained for ``global_step`` steps."""
    torch.manual_seed(123)
    model = DBNet(config)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    hparams = {"model": asdict(config), "input_size": 256}
    torch.save({"state_dict": state, "hyper_parameters": hparams, "global_step": global_step, "epoch": 9}, path)
    return path, model


def test_load_model_weights_copies_and_refuses_what_does_not_fit(tmp_path):
    path, source = saved(tmp_path / "a.ckpt", TINY_MODEL)
    target = DBNet(TINY_MODEL)
    load_model_weights(target, path)
    pairs = zip(source.state_dict().values(), target.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    with pytest.raises(CheckpointError, match="a.ckpt: its weights do not fit this run's model"):
        load_model_weights(DBNet(ModelConfig(inner_channels=32, neck_channels=16)), path)
    torch.save({"something": 1}, tmp_path / "b.ckpt")
    with pytest.raises(CheckpointError, match="b.ckpt: no model weights"):
        load_model_weights(target, tmp_path / "b.ckpt")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    main(["synth", "--out", str(root), "--train", "4", "--val", "2", "--seed", "2"])
    return root


def test_init_starts_from_the_weights_with_a_fresh_step_count(synth_root, tmp_path, monkeypatch):
    path, source = saved(tmp_path / "init.ckpt", TINY_MODEL)
    built = []
    real = backbone.timm.create_model
    monkeypatch.setattr(backbone.timm, "create_model", lambda *a, **k: built.append(k["pretrained"]) or real(*a, **k))
    run = tmp_path / "run"
    overrides = [*TINY_TRAINING, f"data.root={synth_root}", f"run_dir={run}", f"init={path}"]
    # lr 0: the trained parameters stay the loaded ones; pretrained=true would download, init must not
    fit(compose([*overrides, "optim.lr=0.0", "model.pretrained=true"]))
    assert built == [False]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2 and last["epoch"] == 0  # 4 images, batch 2: this run's steps only
    names = {name for name, _ in source.named_parameters()}
    for key, value in source.state_dict().items():
        if key in names:
            assert torch.equal(last["state_dict"][f"model.{key}"], value), key


def test_init_and_resume_are_exclusive(synth_root, tmp_path):
    path, _ = saved(tmp_path / "init.ckpt", TINY_MODEL)
    config = compose([*TINY_TRAINING, f"data.root={synth_root}", f"init={path}", "resume=true"])
    with pytest.raises(ValueError, match="init= starts a new run"):
        fit(config)
