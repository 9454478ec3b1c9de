"""``ocrdet train``: build data, model and Lightning trainer from a TrainConfig and fit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ocrdet.atomic import atomic_write_text
from ocrdet.data.io.format import split_paths
from ocrdet.data.pipeline import ensure_data, make_datamodule
from ocrdet.parallel import usable_cores
from ocrdet.train.bottleneck import RunFacts, StageClock
from ocrdet.train.callbacks import SkippedSamples, ThroughputMonitor, TorchProfilerCallback
from ocrdet.train.checkpointing import AtomicCheckpointIO, StopOnSignal, load_model_weights
from ocrdet.train.config import TrainConfig
from ocrdet.train.module import DBNetModule
from ocrdet.train.progress import StderrProgressBar
from ocrdet.train.resources import ResourceMonitor
from ocrdet.verbosity import settle

LAST_CHECKPOINT = "last.ckpt"


def fit(config: TrainConfig) -> Path:
    """Train and validate; returns the path of the best checkpoint."""
    settle()
    L.seed_everything(config.seed, workers=True)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=1))
    d = config.data
    if not d.urls:
        ensure_data(d.root, config.synth)
    if config.init and (config.resume or config.ckpt_path):
        raise ValueError("init= starts a new run from a checkpoint's weights; resume/ckpt_path continue one: pick one")
    datamodule = make_datamodule(d, config.seed)
    module = DBNetModule(
        dataclasses.replace(config.model, pretrained=False) if config.init else config.model,
        config.loss,
        config.optim,
        config.postprocess,
        eval_size=d.eval_size,
        eval_workers=config.eval_workers,
        compile=config.compile,
        val_ground_truth=None if d.urls else str(split_paths(d.root, d.val_split)[1]),
    )
    if config.init:
        load_model_weights(module.model, config.init)
    checkpoints = run_dir / "checkpoints"
    checkpoint = ModelCheckpoint(
        dirpath=checkpoints, filename="best", monitor="val/hmean", mode="max", enable_version_counter=False
    )
    # Without a monitor, top-1 means "the newest": last.ckpt is rewritten at every epoch end, best or not.
    # No version counter: the last.ckpt that StopOnSignal writes must be overwritten, not kept beside last-v1.ckpt.
    last = ModelCheckpoint(dirpath=checkpoints, filename=Path(LAST_CHECKPOINT).stem, enable_version_counter=False)
    skipped = datamodule.skipped()
    resources = ResourceMonitor(config.trainer.log_every_n_steps)

    def facts() -> RunFacts:
        device, cores, worker_cpu = trainer.strategy.root_device.type, usable_cores(), resources.worker_cpu_pct
        t = config.trainer
        workers = datamodule.loaders.config.num_workers  # data.num_workers=auto resolved
        return RunFacts(device, workers, cores, worker_cpu, t.precision, config.compile, config.eval_workers)

    callbacks: list[L.Callback] = [
        checkpoint,
        last,
        StopOnSignal(checkpoints / LAST_CHECKPOINT),
        SkippedSamples(run_dir / "skipped.json", d.train_split, d.val_split, skipped),
        ThroughputMonitor(config.trainer.log_every_n_steps),
        resources,
        StageClock(facts, run_dir / "bottleneck.txt"),
    ]
    if config.trainer.enable_progress_bar:
        callbacks.append(StderrProgressBar())
    if config.profile_steps:
        callbacks.append(TorchProfilerCallback(config.profile_steps, run_dir / "profile"))
    trainer = L.Trainer(
        default_root_dir=run_dir,
        logger=[CSVLogger(run_dir, name="logs"), TensorBoardLogger(run_dir, name="tb")],
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        **dataclasses.asdict(config.trainer),
    )
    ckpt_path = config.ckpt_path
    if config.resume and ckpt_path is None:
        last = checkpoints / LAST_CHECKPOINT
        ckpt_path = str(last) if last.exists() else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    return Path(checkpoint.best_model_path or checkpoint.last_model_path)
