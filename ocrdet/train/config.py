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

from ocrdet.data.loaders.native import DataConfig
from ocrdet.model.dbnet import ModelConfig
from ocrdet.model.loss import LossWeights
from ocrdet.model.postprocess import PostprocessConfig
from ocrdet.train.module import OptimConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class SynthRequest:
    """Generate a synthetic data set at ``data.root`` when it does not exist yet (0 = never)."""

    train: int = 0
    val: int = 0
    seed: int = 0


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


BACKENDS = ("native", "dali")


@dataclass
class DataSettings(DataConfig):
    """``DataConfig`` plus how the data is read (keys ``data.*`` like the rest)."""

    backend: str = "native"
    """``native``: decode and augment in DataLoader workers (libjpeg-turbo, OpenCV); ``dali``: decode, resize and
    warp in NVIDIA DALI (on the GPU when there is one), polygons and targets in the workers."""
    urls: str = ""
    """Training shards (``ocrdet shard``), a brace pattern of paths or ``pipe:`` commands; empty: ``root``."""
    val_urls: str = ""
    """Validation shards, as ``urls``."""
    shard_index: str = ""
    """The shards' ``index.json`` (path or URL); empty: beside the first local shard."""
    shuffle_buffer: int = 1000
    """Samples a DataLoader worker mixes when streaming shards."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend not in BACKENDS:
            raise ValueError(f"data.backend must be one of {BACKENDS}, got {self.backend!r}")
        if bool(self.urls) != bool(self.val_urls):
            raise ValueError("streaming from shards needs both data.urls and data.val_urls")
        if not (self.root or self.urls):
            raise ValueError("no data: set data.root (a data set folder) or data.urls and data.val_urls (shards)")


@dataclass
class TrainConfig:
    data: DataSettings = field(default_factory=DataSettings)
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
