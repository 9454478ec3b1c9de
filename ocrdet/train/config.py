"""The training configuration: a tree of the components' own settings dataclasses.

Defaults live in those dataclasses only. Hydra composes ``configs/`` (YAML groups that set what
differs) and command-line overrides on top of them; ``from_container`` turns the result back into
typed objects, so components never see a config dict.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrdet.data.config import DataConfig, SynthRequest
from ocrdet.model.dbnet import ModelConfig
from ocrdet.model.loss import LossWeights
from ocrdet.model.postprocess import PostprocessConfig
from ocrdet.train.module import OptimConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.Trainer``."""

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int = 1
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    gradient_clip_val: float | None = None
    enable_progress_bar: bool = True


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthRequest = field(default_factory=SynthRequest)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    optim: OptimConfig = field(default_factory=OptimConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    seed: int = 0
    run_dir: str = "runs/latest"
    ckpt_path: str | None = None
    resume: bool = False
    init: str | None = None
    """A checkpoint whose model weights start this run (fine-tuning): optimizer, schedule and step count start
    fresh, and nothing is downloaded (``model.pretrained`` is ignored). Not with ``resume`` or ``ckpt_path``."""
    eval_workers: int = 1
    compile: bool = False
    profile_steps: int = 0
    """> 0: run torch.profiler for that many training steps and write a trace to ``run_dir/profile``."""


def _build(cls: type, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, hint = values[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def from_container(values: dict[str, Any]) -> TrainConfig:
    """A resolved plain dict (``OmegaConf.to_container``) -> TrainConfig."""
    return _build(TrainConfig, values)


def compose(overrides: list[str]) -> TrainConfig:
    """Compose ``configs/config.yaml`` with command-line style overrides (``trainer.max_epochs=3``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name="ocrdet_defaults", node=dataclasses.asdict(TrainConfig()))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return from_container(OmegaConf.to_container(cfg, resolve=True))
