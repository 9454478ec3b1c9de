"""The training configuration: a tree of the components' own settings dataclasses.

Defaults live in those dataclasses only; ``ocrdet.compose`` puts ``configs/`` and command-line overrides on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ocrdet.compose import compose as compose_settings
from ocrdet.data.config import DataConfig, SynthRequest
from ocrdet.model.dbnet import ModelConfig
from ocrdet.model.loss import LossWeights
from ocrdet.model.postprocess import PostprocessConfig
from ocrdet.train.module import OptimConfig


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


def compose(overrides: list[str]) -> TrainConfig:
    """Compose ``configs/config.yaml`` with command-line style overrides (``trainer.max_epochs=3``)."""
    return compose_settings(TrainConfig, overrides)
