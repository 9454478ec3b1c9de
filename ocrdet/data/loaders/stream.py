"""Streaming from WebDataset shards: split by DDP rank and DataLoader worker, equal epochs, shuffling buffers.

Training: rank r reads shards r, r + world, ... (never another rank's), its DataLoader workers share them
out after a per-epoch shuffle of the shard order, and each worker yields a planned number of full batches so
that every rank has the same number of batches per epoch (DDP would otherwise hang at the end of an epoch):
``batches_per_rank`` = min over ranks of (rank samples // batch) - (workers - 1). The few samples above that
are left out of the epoch, different ones each epoch. Within a worker a ``webdataset.shuffle`` buffer mixes
samples across its shards.

Validation: every sample is read by the ranks x workers "slots" in turn (ordinal % slots); a slot with one
sample less repeats the first sample, so that all ranks have the same number of batches. The validation
metric counts each image once by name (``DBNetModule``), so the repeat does not count twice.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from ocrdet.data.config import DataConfig
from ocrdet.data.loaders.native import collate
from ocrdet.data.sources.base import EncodedSample
from ocrdet.data.sources.shards import ShardError, ShardSource
from ocrdet.data.transforms.item import Items

ItemFn = Callable[[EncodedSample], dict[str, Any]]
"""Encoded sample -> one item of a batch (``ShardItems``, or the DALI backend's ``GeometryItems``)."""


def batches_per_rank(counts: list[int], world_size: int, workers: int, batch_size: int) -> int:
    """Training batches every rank yields per epoch (see the module docstring); ``ShardError`` when < 1."""
    if len(counts) < world_size:
        raise ShardError(f"{len(counts)} shards for {world_size} ranks: write at least one shard per rank")
    per_rank = [sum(counts[r::world_size]) for r in range(world_size)]
    n = min(per_rank) // batch_size - (max(workers, 1) - 1)
    if n < 1:
        raise ShardError(
            f"ranks get {min(per_rank)} samples at least, too few for {max(workers, 1)} workers x batches of "
            f"{batch_size}; use fewer workers, a smaller batch or more data"
        )
    return n


def allocate(total: int, capacity: list[int]) -> list[int]:
    """Split ``total`` into parts no larger than ``capacity`` (sum >= total), about proportional to it."""
    whole = sum(capacity)
    parts = [total * c // whole if whole else 0 for c in capacity]
    for i in range(len(parts)):
        extra = min(capacity[i] - parts[i], total - sum(parts))
        parts[i] += extra
    return parts


def train_plan(
    counts: list[int], epoch: int, seed: int, rank: int, world_size: int, worker: int, workers: int, batch_size: int
) -> list[tuple[int, int]]:
    """(shard index, samples to read from its start) for one worker of one rank in one epoch; the samples add
    up to ``batch_size`` times that worker's share of ``batches_per_rank``."""
    n_batches = batches_per_rank(counts, world_size, workers, batch_size)
    mine = np.arange(rank, len(counts), world_size)
    mine = mine[np.random.default_rng([seed, epoch, rank]).permutation(len(mine))]
    groups = [mine[w :: max(workers, 1)] for w in range(max(workers, 1))]
    shares = allocate(n_batches, [sum(counts[i] for i in g) // batch_size for g in groups])
    plan, left = [], shares[worker] * batch_size
    for i in groups[worker]:
        if left == 0:
            break
        plan.append((int(i), min(counts[i], left)))
        left -= plan[-1][1]
    return plan


def val_slots(n: int, slot: int, slots: int) -> tuple[list[int], int]:
    """Ordinals read by ``slot`` of ``slots`` and how many copies of ordinal 0 pad it to ceil(n / slots)."""
    own = list(range(slot, n, slots))
    return own, math.ceil(n / slots) - len(own)


class ShardItems:
    """Items of a ``ShardSource``'s samples: decoded by the source (libjpeg-turbo), then
    ``ocrdet.data.transforms.item`` as for any source. A sample that fails raises an error naming its shard, key
    and file (skipping it would make the ranks' epochs unequal)."""

    def __init__(self, source: ShardSource, train: bool, config: DataConfig) -> None:
        self.source = source
        self.items = Items(train, config.augment, config.targets, config.eval_size)

    def __call__(self, encoded: EncodedSample) -> dict[str, Any]:
        return self.items(self.source.decode(encoded)) | {"skipped": []}


class ShardStream(IterableDataset):
    """Batches from shards for one rank (``rank`` of ``world_size``, fixed when the loader is made); each of
    ``workers`` DataLoader workers (0: the main process) reads its share. Use with ``batch_size=None``."""

    def __init__(
        self,
        shards: ShardSource,
        train: bool,
        items: ItemFn,
        batch_size: int,
        workers: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        collate_fn: Callable[[list[dict[str, Any]]], dict[str, Any]] = collate,
    ) -> None:
        self.shards, self.train, self.items, self.batch_size = shards, train, items, batch_size
        self.workers, self.rank, self.world_size = max(workers, 1), rank, world_size
        self.shuffle_buffer, self.seed, self.collate_fn = shuffle_buffer, seed, collate_fn
        self.epoch = -1
        """Counts the epochs of this process's copy (DataLoader workers must be persistent)."""

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if self.train:
            return batches_per_rank(self.shards.counts, self.world_size, self.workers, self.batch_size)
        own = math.ceil(len(self.shards) / (self.world_size * self.workers))
        return self.workers * math.ceil(own / self.batch_size)

    def _worker(self) -> int:
        info = get_worker_info()
        found = 1 if info is None else info.num_workers
        if found != self.workers:
            raise RuntimeError(f"ShardStream made for {self.workers} DataLoader worker(s) runs in {found}")
        return 0 if info is None else info.id

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        worker = self._worker()
        samples = self._train_samples(worker) if self.train else self._val_samples(worker)
        return wds.batched(self.batch_size, self.collate_fn, partial=True)(samples)

    def _train_samples(self, worker: int) -> Iterator[dict[str, Any]]:
        plan = train_plan(
            self.shards.counts, self.epoch, self.seed, self.rank, self.world_size, worker, self.workers, self.batch_size
        )
        rng = random.Random(f"{self.seed}-{self.epoch}-{self.rank}-{worker}")
        shuffle = wds.shuffle(self.shuffle_buffer, min(100, self.shuffle_buffer), rng=rng)
        for encoded in shuffle(self._read(plan)):
            yield self.items(encoded)

    def _read(self, plan: list[tuple[int, int]]) -> Iterator[EncodedSample]:
        for i, take in plan:
            yield from self.shards.read(i, take)

    def _val_samples(self, worker: int) -> Iterator[dict[str, Any]]:
        slots = self.world_size * self.workers
        own, pad = val_slots(len(self.shards), self.rank * self.workers + worker, slots)
        wanted, first = set(own), None
        for ordinal, encoded in enumerate(self.shards.samples()):
            if ordinal == 0:
                first = encoded
            if ordinal in wanted:
                yield self.items(encoded)
        for _ in range(pad):
            yield self.items(first)


def as_is(batch: dict[str, Any]) -> dict[str, Any]:
    """The DataLoader's per-batch function for ready batches (its default would turn NumPy arrays into tensors)."""
    return batch
