"""The native loader: ``DetectionDataset`` (a source's samples -> items, ``ocrdet.data.transforms.item``), the
uint8 ``collate`` into reused shared-memory batches, and ``make_loader``, the one DataLoader every backend uses.

Images stay uint8 all the way to the device; the model normalizes them there. A sample that fails when it is
read (a file changed after the data check, ...) raises an error naming it, or with ``on_bad_sample=skip`` is
replaced by the next readable one and listed in the batch's ``skipped``: it never stops a worker mid-epoch.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ocrdet.data.check import OnBadSample
from ocrdet.data.config import EVAL_SIZE, DataConfig
from ocrdet.data.io.decode import ImageDecodeError
from ocrdet.data.io.format import AnnotationError
from ocrdet.data.loaders.shared_batch import stack_batch
from ocrdet.data.sources.base import Source
from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.data.transforms.item import Items, stored_item
from ocrdet.data.transforms.maps import MAP_KEYS
from ocrdet.data.transforms.targets import TargetConfig


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
        source: Source,
        train: bool,
        augment: AugmentConfig,
        targets: TargetConfig,
        eval_size: int = EVAL_SIZE,
        on_bad_sample: OnBadSample = OnBadSample.ERROR,
    ) -> None:
        self.source = source
        self.train = train
        self.on_bad_sample = on_bad_sample
        self.items = Items(train, augment, targets, eval_size)
        self._bad: set[int] = set()
        """Indices found unreadable in this process, not tried again."""

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
                if self.on_bad_sample != OnBadSample.SKIP and named:
                    raise
                name, reason = self.source.names[i], str(exc) if named else f"{type(exc).__name__}: {exc}"
                if self.on_bad_sample != OnBadSample.SKIP:
                    raise BadSampleError(f"{name}: {reason}") from exc
                self._bad.add(i)
                skipped.append({"file": name, "reason": reason})
                continue
            item["skipped"] = skipped
            return item
        raise BadSampleError(f"none of the {len(self)} samples could be read; the first failure: {skipped[:1]}")

    def _item(self, index: int) -> dict[str, Any]:
        if not self.train and getattr(self.source, "has_targets", False):
            return stored_item(self.source.get(index), self.source.targets(index))
        return self.items(self.source.get(index))


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


def make_loader(
    dataset: Any,
    config: DataConfig,
    train: bool,
    collate_fn: Callable[[Any], dict[str, Any]],
    sampler: Sampler | None = None,
) -> DataLoader:
    """The DataLoader of every backend: ``config``'s workers (persistent) and batch size, shuffled and without
    a partial last batch for training, pinned when there is a GPU. An ``IterableDataset`` (the shard stream)
    batches itself: it gets ``batch_size=None`` and ``collate_fn`` takes its ready batches."""
    batched = not isinstance(dataset, torch.utils.data.IterableDataset)
    batch_size = config.loader_batch_size(train)
    return DataLoader(
        dataset,
        batch_size=batch_size if batched else None,
        shuffle=train and batched and sampler is None,
        sampler=sampler,
        drop_last=train and batched and len(dataset) >= batch_size,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        collate_fn=collate_fn,
        worker_init_fn=init_worker,
    )
