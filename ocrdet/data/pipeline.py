"""``make_datamodule(DataConfig, seed)``: which source (folder, prepared cache, shards) and which backend
(native, DALI) make the batches; the one place that chooses.

The path of an image, from disk to the device: ``io.decode`` (upright, DCT-scaled) -> ``sources`` (folder,
cache or shards: a ``Sample`` or ``EncodedSample``) -> ``transforms.item`` (warp / letterbox, targets) ->
``loaders`` (DataLoader, shared-memory collate; DALI makes the pixels itself) -> the training step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import lightning as L

from ocrdet.data.check import Problem
from ocrdet.data.config import AUTO, Backend, DataConfig, SynthRequest
from ocrdet.data.io.synth import generate_dataset, synth_config
from ocrdet.data.loaders.native import DetectionDataset, collate, loader_batch_size, make_loader
from ocrdet.data.sources.base import Source
from ocrdet.data.sources.cache import CacheSource
from ocrdet.data.sources.folder import FolderSource, open_folder
from ocrdet.data.sources.prepare import prepare_cache
from ocrdet.data.sources.shards import ShardSource, open_shards
from ocrdet.parallel import usable_cores


class Loaders(Protocol):
    """Makes the training or validation loader of one rank (``rank`` of ``world``)."""

    skipped: dict[str, list[Problem]]
    """Per split, the images the data check left out (``on_bad_sample=skip``)."""

    def __call__(self, train: bool, rank: int, world: int) -> Any: ...


class DetectionDataModule(L.LightningDataModule):
    """Training and validation loaders of one data configuration, whatever the source and backend."""

    def __init__(self, loaders: Loaders) -> None:
        super().__init__()
        self.loaders = loaders

    def skipped(self) -> dict[str, list[Problem]]:
        """Per split, the images the data check left out (``on_bad_sample=skip``)."""
        return self.loaders.skipped

    def _loader(self, train: bool) -> Any:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return self.loaders(train, rank, world)

    def train_dataloader(self) -> Any:
        return self._loader(train=True)

    def val_dataloader(self) -> Any:
        return self._loader(train=False)


def ensure_data(root: str | Path, synth: SynthRequest) -> Path:
    """The data root; generated synthetic receipts when it is missing and ``synth`` asks for them."""
    root = Path(root)
    if not root.exists() and synth.train > 0:
        print(f"generating {synth.train}+{synth.val} synthetic receipts in {root}")
        config = synth_config(synth.preset, synth.level)
        generate_dataset(root, synth.train, synth.val, seed=synth.seed, config=config)
    if not root.exists():
        raise FileNotFoundError(f"data root {root} does not exist (expected {root}/images/<split>, {root}/jsons/)")
    return root


def open_source(root: Path, split: str, config: DataConfig, train: bool) -> Source:
    """The prepared cache of ``split`` (built on first use; validation caches hold final maps), or the
    image folder itself when ``data.cache=false``."""
    if not config.cache:  # validation: decoded as predict decodes (``folder.load_sample``)
        if train:
            return open_folder(root, split, config.cache_long_side, config.on_bad_sample)
        return open_folder(root, split, None, config.on_bad_sample, decode_side=config.eval_size)
    cache_dir, settings = Path(config.cache_dir), config.cache_config()
    path = prepare_cache(root, split, cache_dir, settings, with_targets=not train, on_bad_sample=config.on_bad_sample)
    return CacheSource(path)


class NativeLoaders:
    """Folder or cache (``sources``: training, validation), decoded and augmented in DataLoader workers
    (Lightning adds the DDP sampler)."""

    def __init__(self, config: DataConfig, sources: dict[bool, Source]) -> None:
        self.config, self.sources = config, sources

    @property
    def skipped(self) -> dict[str, list[Problem]]:
        return {self.config.split(train): list(source.skipped) for train, source in self.sources.items()}

    def __call__(self, train: bool, rank: int, world: int) -> Any:
        c = self.config
        dataset = DetectionDataset(self.sources[train], train, c.augment, c.targets, c.eval_size, c.on_bad_sample)
        return make_loader(dataset, c, train, collate)


class DaliFolderLoaders(NativeLoaders):
    """The image folders (``sources``) through DALI; ranks split the data with a DistributedSampler (validation
    pads with repeats, which the metric counts once)."""

    sources: dict[bool, FolderSource]

    def __call__(self, train: bool, rank: int, world: int) -> Any:
        from torch.utils.data import DistributedSampler

        from ocrdet.data.loaders.dali import EncodedFolder, GeometryItems, collate_encoded, dali_loader

        dataset = EncodedFolder(self.sources[train], GeometryItems(train, self.config))
        sampler = DistributedSampler(dataset, world, rank, shuffle=train, drop_last=train) if world > 1 else None
        return dali_loader(make_loader(dataset, self.config, train, collate_encoded, sampler), train, self.config)


class ShardLoaders(NativeLoaders):
    """WebDataset shards (``sources``) streamed per rank and worker (``ocrdet.data.loaders.stream``), decoded
    natively or by DALI."""

    sources: dict[bool, ShardSource]

    def __init__(self, config: DataConfig, sources: dict[bool, ShardSource], seed: int) -> None:
        super().__init__(config, sources)
        self.seed = seed

    def __call__(self, train: bool, rank: int, world: int) -> Any:
        from ocrdet.data.loaders.stream import ShardItems, ShardStream, as_is

        c, source, dali = self.config, self.sources[train], self.config.backend == Backend.DALI
        if dali:
            from ocrdet.data.loaders.dali import GeometryItems, collate_encoded, dali_loader

            items, collate_fn = GeometryItems(train, c), collate_encoded
        else:
            items, collate_fn = ShardItems(source, train, c), collate
        batch, workers = loader_batch_size(c, train), c.num_workers
        stream = ShardStream(source, train, items, batch, workers, rank, world, c.shuffle_buffer, self.seed, collate_fn)
        loader = make_loader(stream, c, train, as_is)
        return dali_loader(loader, train, c) if dali else loader


def make_datamodule(config: DataConfig, seed: int) -> DetectionDataModule:
    """Shards (``data.urls``) or the data root (prepared cache or folder), read by the ``data.backend``; the
    DataModule's ``loaders.config`` has ``num_workers=auto`` resolved to a count."""
    if config.num_workers == AUTO and (config.urls or config.backend == Backend.DALI):
        config = dataclasses.replace(config, num_workers=usable_cores())
    if config.urls:
        urls = {True: config.urls, False: config.val_urls}
        shards = {t: open_shards(urls[t], config.shard_index, config.cache_long_side) for t in urls}
        return DetectionDataModule(ShardLoaders(config, shards, seed))
    root = Path(config.root)
    if config.backend == Backend.DALI:  # DALI decodes the files itself: the folder, checked first
        folders = {
            t: open_folder(root, config.split(t), config.cache_long_side, config.on_bad_sample) for t in (True, False)
        }
        return DetectionDataModule(DaliFolderLoaders(config, folders))
    sources = {train: open_source(root, config.split(train), config, train) for train in (True, False)}
    if config.num_workers == AUTO:
        config = dataclasses.replace(config, num_workers=_auto_workers(config, sources[True]))
    return DetectionDataModule(NativeLoaders(config, sources))


def _auto_workers(config: DataConfig, source: Source) -> int:
    """``data.num_workers=auto`` for the native loaders: measured on the training source (saved beside its cache)."""
    from ocrdet.data.loaders.workers import auto_workers

    dataset = DetectionDataset(source, True, config.augment, config.targets, config.eval_size, config.on_bad_sample)

    def loader(workers: int) -> Any:
        return make_loader(dataset, dataclasses.replace(config, num_workers=workers), True, collate)

    folder = source.path if isinstance(source, CacheSource) else None
    settings = {"augment": config.augment, "targets": config.targets, "long_side": config.cache_long_side}
    return auto_workers(loader, config.batch_size, folder, settings)
