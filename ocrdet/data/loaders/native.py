"""Dataset and DataModule: samples from a source (prepared cache or image folder) to uint8 batches + DB targets.

Images stay uint8 all the way to the device; the model normalizes them there. A sample that fails when it is
read (a file changed after the data check, ...) raises an error naming it, or with ``on_bad_sample=skip`` is
replaced by the next readable one and listed in the batch's ``skipped``: it never stops a worker mid-epoch.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ocrdet.data.check import DEFAULT_POLICY, POLICIES, Problem
from ocrdet.data.io.decode import ImageDecodeError
from ocrdet.data.io.format import AnnotationError
from ocrdet.data.loaders.shared_batch import stack_batch
from ocrdet.data.sources.folder import Sample
from ocrdet.data.sources.prepare import CacheConfig
from ocrdet.data.transforms.augment import AugmentConfig, color_jitter, letterbox, random_warp
from ocrdet.data.transforms.targets import MAP_DTYPES, MAP_KEYS, TargetConfig, make_db_targets


class BadSampleError(ValueError):
    """A sample that could not be turned into a training item; the message names its file."""


class DetectionDataset(Dataset):
    """One item: ``image`` uint8 (S, S, 3), the four DB maps (S, S) in ``MAP_DTYPES``, and for evaluation the
    polygons/ignore flags in the network frame and ``matrix`` (3x3: stored-frame points -> network frame);
    ``skipped``: ``{"file", "reason"}`` of the samples that failed and were replaced by this one.

    ``train=True`` draws a random fused warp to ``augment.size``; otherwise the image is letterboxed to
    ``eval_size`` (text is then as large as in training crops, which zoom in by ``augment.scale``), or
    taken ready-made with its maps from a validation cache (``source.has_targets``).
    ``on_bad_sample``: ``error`` raises on a sample that fails; ``skip`` takes the next index that works.
    """

    def __init__(
        self,
        source: Any,
        train: bool,
        augment: AugmentConfig,
        targets: TargetConfig,
        eval_size: int = CacheConfig.val_size,
        on_bad_sample: str = DEFAULT_POLICY,
    ) -> None:
        if on_bad_sample not in POLICIES:
            raise ValueError(f"on_bad_sample must be one of {POLICIES}, got {on_bad_sample!r}")
        self.source = source
        self.train = train
        self.augment = augment
        self.targets = targets
        self.eval_size = eval_size
        self.on_bad_sample = on_bad_sample
        self._bad: set[int] = set()
        """Indices found unreadable in this process, not tried again."""
        self._random = AugmentRandom()

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        skipped = []
        for offset in range(len(self)):
            i = (index + offset) % len(self)
            if i in self._bad:
                continue
            try:
                item = self._item(i)
            except Exception as exc:  # noqa: BLE001 - whatever a bad sample raises, it is that sample's problem
                named = isinstance(exc, (ImageDecodeError, AnnotationError))
                if self.on_bad_sample == "error" and named:
                    raise
                name, reason = self.source.names[i], str(exc) if named else f"{type(exc).__name__}: {exc}"
                if self.on_bad_sample == "error":
                    raise BadSampleError(f"{name}: {reason}") from exc
                self._bad.add(i)
                skipped.append({"file": name, "reason": reason})
                continue
            item["skipped"] = skipped
            return item
        raise BadSampleError(f"none of the {len(self)} samples could be read; the first failure: {skipped[:1]}")

    def _item(self, index: int) -> dict[str, Any]:
        if not self.train and getattr(self.source, "has_targets", False):
            sample = self.source.get(index)
            maps = {k: v.astype(MAP_DTYPES[k]) for k, v in self.source.targets(index).items()}
            return _as_item(np.array(sample.image), maps, sample.name, sample.polygons, sample.ignore, sample.matrix)
        return self.transform(self.source.get(index))

    def transform(self, sample: Sample) -> dict[str, Any]:
        """The item of ``sample``: a random warp and its targets for training, else letterbox and targets."""
        if self.train:
            rng = self._random.get()
            image, polygons, kept = random_warp(sample.image, sample.polygons, rng, self.augment)
            image = color_jitter(image, rng, self.augment)
            ignore, matrix = sample.ignore[kept], sample.matrix
        else:
            image, polygons, scale = letterbox(sample.image, sample.polygons, self.eval_size)
            ignore, matrix = sample.ignore, np.diag([scale, scale, 1.0]) @ sample.matrix
        maps = make_db_targets(polygons, ignore, image.shape[0], image.shape[1], self.targets)
        return _as_item(image, maps, sample.name, polygons, ignore, matrix)


def _as_item(
    image: np.ndarray,
    maps: dict[str, np.ndarray],
    name: str,
    polygons: list[np.ndarray],
    ignore: np.ndarray,
    matrix: np.ndarray,
) -> dict[str, Any]:
    item = {"image": torch.from_numpy(image), **{k: torch.from_numpy(maps[k]) for k in MAP_KEYS}}
    item.update(name=name, polygons=polygons, ignore=ignore, matrix=matrix)
    return item


class AugmentRandom:
    """The generator of training augmentations of one process, seeded from ``torch.initial_seed()`` on first use.

    It advances from sample to sample and from epoch to epoch. (Seeding per sample from the worker seed and the
    index would repeat itself: persistent DataLoader workers keep their seed, so each image would see at most
    ``num_workers`` different augmentations in a whole run.) A copy in another process (a DataLoader worker)
    starts its own generator from that process's seed, so runs are reproducible.
    """

    def __init__(self) -> None:
        self._pid, self._rng = -1, np.random.default_rng(0)

    def get(self) -> np.random.Generator:
        if self._pid != os.getpid():
            self._pid, self._rng = os.getpid(), np.random.default_rng(torch.initial_seed() % 2**63)
        return self._rng


def init_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers ignore Ctrl-C, which a terminal sends to them too; the main process
    decides what happens (``ocrdet.train.checkpointing.StopOnSignal`` saves a checkpoint) and stops them.

    (OpenCV's thread count is left alone: ``cv2.setNumThreads`` in a forked worker can hang for good, waiting for
    the parent's pool threads, which a fork does not copy.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep per-image polygons, flags, names and matrices as lists; join the ``skipped`` lists."""
    rest: dict[str, Any] = {key: [it[key] for it in items] for key in ("name", "polygons", "ignore", "matrix")}
    rest["skipped"] = [entry for it in items for entry in it["skipped"]]
    return stack_batch({key: [it[key] for it in items] for key in ("image", *MAP_KEYS)}, rest)


@dataclass
class DataConfig:
    root: str = "data/synth"
    train_split: str = "train"
    val_split: str = "val"
    batch_size: int = 8
    eval_size: int = CacheConfig.val_size
    num_workers: int = 2
    cache: bool = True
    cache_dir: str = ".ocrdet-cache"
    cache_long_side: int = CacheConfig.long_side
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    on_bad_sample: str = DEFAULT_POLICY
    """What a bad image or annotation does: ``error`` stops before training with the list of every problem
    (``ocrdet check``); ``skip`` trains on the rest and lists what was left out in ``run_dir/skipped.json``."""

    def __post_init__(self) -> None:
        if self.on_bad_sample not in POLICIES:
            raise ValueError(f"data.on_bad_sample must be one of {POLICIES}, got {self.on_bad_sample!r}")

    def loader_batch_size(self, train: bool) -> int:
        """``batch_size`` for training; validation batches are half as large (at least 1)."""
        return self.batch_size if train else max(1, self.batch_size // 2)


class DetectionDataModule(L.LightningDataModule):
    def __init__(self, config: DataConfig, sources: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.sources = sources

    def _loader(self, split: str, train: bool) -> DataLoader:
        c = self.config
        dataset = DetectionDataset(self.sources[split], train, c.augment, c.targets, c.eval_size, c.on_bad_sample)
        return DataLoader(
            dataset,
            batch_size=c.loader_batch_size(train),
            shuffle=train,
            drop_last=train and len(dataset) >= c.batch_size,
            num_workers=c.num_workers,
            persistent_workers=c.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            collate_fn=collate,
            worker_init_fn=init_worker,
        )

    def skipped(self) -> dict[str, list[Problem]]:
        """Per split, the images the data check left out (``on_bad_sample=skip``)."""
        return {split: list(source.skipped) for split, source in self.sources.items()}

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.config.train_split, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.config.val_split, train=False)
