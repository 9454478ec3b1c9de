"""A checkpoint is untrusted input: loading it never touches the network, and every stored setting is checked."""

from __future__ import annotations

import socket
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from ocrdet.infer import CheckpointError, load_checkpoint
from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.model.postprocess import PostprocessConfig
from ocrdet.settings import SettingsError
from ocrdet.train.config import compose

TINY = ModelConfig(backbone="resnet10t", inner_channels=16, neck_channels=16)


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return {f"model.{k}": v for k, v in DBNet(TINY).state_dict().items()}


def write_checkpoint(path: Path, state_dict: dict, model: dict | None = None, **hparams) -> Path:
    stored = {"model": {**asdict(TINY), **(model or {})}, "postprocess": asdict(PostprocessConfig()), "input_size": 128}
    torch.save({"state_dict": state_dict, "hyper_parameters": {**stored, **hparams}}, path)
    return path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access while loading a checkpoint: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_stored_pretrained_true_downloads_nothing(tmp_path, state_dict, no_network):
    path = write_checkpoint(tmp_path / "a.ckpt", state_dict, {"pretrained": True})
    model, _, size = load_checkpoint(path)
    assert size == 128 and isinstance(model, DBNet)


@pytest.mark.parametrize("backbone", ["hf-hub:attacker/evil-model", "timm/resnet18.a1_in1k", "no_such_net"])
def test_a_backbone_not_built_into_timm_is_refused_offline(tmp_path, state_dict, no_network, backbone):
    path = write_checkpoint(tmp_path / "a.ckpt", state_dict, {"backbone": backbone, "pretrained": True})
    with pytest.raises(CheckpointError, match=f"{path}: .*model.backbone '{backbone}' is not an architecture built"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("hparams", "message"),
    [
        ({"input_size": 100000}, "input_size must be between 32 and 4096, got 100000"),
        ({"eval_size": 100000}, "eval_size must be between 32 and 4096, got 100000"),
        ({"input_size": 0}, "input_size must be between 32 and 4096, got 0"),
        ({"input_size": 100}, "input_size must be a multiple of 32, got 100"),
        ({"input_size": "640"}, "input_size must be a whole number, got '640'"),
        ({"postprocess": {"box_thresh": "0.5"}}, "postprocess.box_thresh must be a number, got '0.5'"),
        ({"postprocess": {"thresh": float("nan")}}, "postprocess.thresh must be between 0.0 and 1.0, got nan"),
        ({"postprocess": {"max_candidates": True}}, "postprocess.max_candidates must be a whole number, got True"),
        ({"model": {"inner_channels": 10**9}}, "model.inner_channels must be between 1 and 2048"),
        ({"model": {"channels_last": "no"}}, "model.channels_last must be true or false, got 'no'"),
    ],
)
def test_stored_settings_are_checked_with_limits(tmp_path, state_dict, hparams, message):
    model = hparams.pop("model", None)
    path = write_checkpoint(tmp_path / "a.ckpt", state_dict, model, **hparams)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: a stored setting is refused: ") and message in str(info.value)


def test_the_command_line_gets_the_same_checks():
    with pytest.raises(SettingsError, match="postprocess.box_thresh must be a number, got 'abc'"):
        compose(["postprocess.box_thresh=abc"])
    with pytest.raises(SettingsError, match="postprocess.thresh must be between 0.0 and 1.0, got 2"):
        compose(["postprocess.thresh=2"])
    assert compose(["postprocess.thresh=1"]).postprocess.thresh == 1
    with pytest.raises(SettingsError, match="data.eval_size must be between 32 and 4096, got 100000"):
        compose(["data.eval_size=100000"])
