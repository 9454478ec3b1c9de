from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# The default run draws the same hypothesis examples on every machine, so CI replays exactly what passed here
# (a random draw once crashed GEOS inside PyPI cleval's POLY oracle in CI and nowhere else). To hunt for new
# failures, draw at random: `python -m pytest --hypothesis-profile=explore`.
settings.register_profile("default", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("default")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The team's real data (SROIE, ICDAR 2015 GT); tests that need it skip without it."""
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained small DBNet saved as an ocrdet checkpoint (eval_size 128); thresholds 0 make it find at least
    one polygon on any image."""
    from dataclasses import asdict

    import torch

    from ocrdet.model.dbnet import DBNet, ModelConfig
    from ocrdet.model.postprocess import PostprocessConfig

    config = ModelConfig(backbone="resnet10t", inner_channels=16, neck_channels=16)
    model = DBNet(config)
    hparams = {
        "model": asdict(config),
        "postprocess": asdict(PostprocessConfig(thresh=0.0, box_thresh=0.0)),
        "eval_size": 128,
    }
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return path
