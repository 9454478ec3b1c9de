"""``ocrdet train``: build data, model and Lightning trainer from a TrainConfig and fit."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ocrdet.atomic import atomic_write_text
from ocrdet.data.io.synth import generate_dataset
from ocrdet.data.loaders.native import DataConfig, DetectionDataModule
from ocrdet.data.sources.folder import Source, open_folder
from ocrdet.data.sources.prepare import CacheConfig, find_or_build
from ocrdet.train.callbacks import SkippedSamples, ThroughputMonitor, TorchProfilerCallback
from ocrdet.train.checkpointing import AtomicCheckpointIO, StopOnSignal
from ocrdet.train.config import TrainConfig
from ocrdet.train.module import DBNetModule

LAST_CHECKPOINT = "last.ckpt"


def ensure_data(config: TrainConfig) -> Path:
    """The data root; generated synthetic receipts when it is missing and ``synth`` asks for them."""
    root = Path(config.data.root)
    if not root.exists() and config.synth.train > 0:
        print(f"generating {config.synth.train}+{config.synth.val} synthetic receipts in {root}")
        generate_dataset(root, config.synth.train, config.synth.val, seed=config.synth.seed)
    if not root.exists():
        raise FileNotFoundError(f"data root {root} does not exist (expected {root}/images/<split>, {root}/jsons/)")
    return root


def open_source(root: Path, split: str, d: DataConfig, train: bool) -> Source:
    """The prepared cache of ``split`` (built on first use; validation caches hold final maps), or the
    image folder itself when ``data.cache=false``."""
    if not d.cache:
        return open_folder(root, split, d.cache_long_side, d.on_bad_sample)
    config = CacheConfig(long_side=d.cache_long_side, val_size=d.eval_size, targets=d.targets)
    return find_or_build(root, split, Path(d.cache_dir), config, with_targets=not train, on_bad_sample=d.on_bad_sample)


def make_datamodule(config: TrainConfig) -> L.LightningDataModule:
    """Shards (``data.urls``) or the data root (prepared cache or folder), read by the ``data.backend``."""
    d = config.data
    if d.urls:
        from ocrdet.data.loaders.stream import ShardDataModule, open_shards

        train, val = open_shards(d.urls, d.shard_index), open_shards(d.val_urls, d.shard_index)
        if d.backend == "dali":
            from ocrdet.data.loaders.dali import GeometryItems, collate_encoded, dali_loader

            wrap = functools.partial(dali_loader, config=d)
            return ShardDataModule(d, train, val, d.shuffle_buffer, config.seed, GeometryItems, collate_encoded, wrap)
        return ShardDataModule(d, train, val, d.shuffle_buffer, config.seed)
    root = ensure_data(config)
    if d.backend == "dali":
        from ocrdet.data.loaders.dali import DaliFolderDataModule

        return DaliFolderDataModule(d, root)
    sources = {
        d.train_split: open_source(root, d.train_split, d, train=True),
        d.val_split: open_source(root, d.val_split, d, train=False),
    }
    return DetectionDataModule(d, sources)


def fit(config: TrainConfig) -> Path:
    """Train and validate; returns the path of the best checkpoint."""
    L.seed_everything(config.seed, workers=True)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=1))
    d = config.data
    datamodule = make_datamodule(config)
    module = DBNetModule(
        config.model,
        config.loss,
        config.optim,
        config.postprocess,
        input_size=d.eval_size,
        eval_workers=config.eval_workers,
        compile=config.compile,
    )
    checkpoints = run_dir / "checkpoints"
    checkpoint = ModelCheckpoint(
        dirpath=checkpoints, filename="best", monitor="val/hmean", mode="max", enable_version_counter=False
    )
    # Without a monitor, top-1 means "the newest": last.ckpt is rewritten at every epoch end, best or not.
    # No version counter: the last.ckpt that StopOnSignal writes must be overwritten, not kept beside last-v1.ckpt.
    last = ModelCheckpoint(dirpath=checkpoints, filename=Path(LAST_CHECKPOINT).stem, enable_version_counter=False)
    skipped = datamodule.skipped() if hasattr(datamodule, "skipped") else {}
    callbacks: list[L.Callback] = [
        checkpoint,
        last,
        StopOnSignal(checkpoints / LAST_CHECKPOINT),
        SkippedSamples(run_dir / "skipped.json", d.train_split, d.val_split, skipped),
        ThroughputMonitor(config.trainer.log_every_n_steps),
    ]
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
