"""Stacking a batch in a DataLoader worker into shared memory that the worker reuses from batch to batch.

``default_collate`` in a worker stacks every tensor of every batch into a fresh shared-memory segment. Creating
one and faulting its pages in costs the worker about 4.5 ms per 640² training sample (4 MB: image and maps; 36 ms
per batch of 8), a third of its time. Measured on 2 cores with 2 workers on synthetic receipts: 118.7 samples/s,
against 150.3 when the buffers are reused. Here each worker keeps a few buffers, one segment per batch for all its
tensors, and stacks into a free one.

A buffer is never overwritten while anything still reads it: the batch travels with a lease, and in the process
that receives it the lease marks the buffer free once the last tensor viewing the batch's memory is gone (a
finalizer on the storage). A consumer that keeps batches only makes the worker stack into fresh memory instead.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import default_collate, get_worker_info

POOL_SIZE = 4
"""Buffers a worker keeps: the batches it has ahead (``prefetch_factor``, 2 by default) plus those in use."""
_ALIGN = 64


@dataclass(frozen=True)
class _Field:
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    offset: int
    """Bytes from the buffer's start."""

    @property
    def nbytes(self) -> int:
        return torch.Size(self.shape).numel() * self.dtype.itemsize


def _layout(columns: dict[str, list[torch.Tensor]]) -> tuple[_Field, ...]:
    fields, offset = [], 0
    for key, tensors in columns.items():
        field = _Field(key, (len(tensors), *tensors[0].shape), tensors[0].dtype, offset)
        fields.append(field)
        offset += -(-field.nbytes // _ALIGN) * _ALIGN
    return tuple(fields)


def _views(flat: torch.Tensor, layout: tuple[_Field, ...]) -> dict[str, torch.Tensor]:
    """The tensors of ``layout`` inside the uint8 buffer ``flat`` (no copies)."""
    return {f.key: flat[f.offset : f.offset + f.nbytes].view(f.dtype).view(f.shape) for f in layout}


class _LeasedBatch(dict):
    """A batch whose tensors live in ``flat``, buffer ``slot`` of its worker; it is pickled as one buffer."""

    def __init__(
        self, batch: dict[str, Any], flat: torch.Tensor, layout: tuple[_Field, ...], busy: torch.Tensor, slot: int
    ) -> None:
        super().__init__(batch)
        self.flat, self.layout, self.busy, self.slot = flat, layout, busy, slot

    def __reduce__(self) -> tuple[Any, ...]:
        tensor_keys = {f.key for f in self.layout}
        rest = {k: v for k, v in self.items() if k not in tensor_keys}
        return _receive, (self.flat, self.layout, rest, list(self), self.busy, self.slot)


def _receive(
    flat: torch.Tensor,
    layout: tuple[_Field, ...],
    rest: dict[str, Any],
    order: list[str],
    busy: torch.Tensor,
    slot: int,
) -> dict[str, Any]:
    """Unpickling in the consumer: a plain dict, and the buffer handed back once its storage is freed."""
    weakref.finalize(flat.untyped_storage(), _release, busy, slot)
    tensors = _views(flat, layout)
    return {key: tensors[key] if key in tensors else rest[key] for key in order}


def _release(busy: torch.Tensor, slot: int) -> None:
    busy[slot] = 0


class _Pool:
    """One worker's buffers; ``busy[slot]`` is 1 from stacking until the consumer drops the batch."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.busy = torch.zeros(POOL_SIZE, dtype=torch.uint8).share_memory_()
        self.buffers: list[tuple[torch.Tensor, tuple[_Field, ...]] | None] = [None] * POOL_SIZE

    def take(self, layout: tuple[_Field, ...]) -> int | None:
        """A free slot holding a buffer of ``layout`` (made if needed), or None when every buffer is in use."""
        free = [slot for slot in range(POOL_SIZE) if not self.busy[slot]]
        if not free:
            return None
        slot = next((s for s in free if self.buffers[s] is not None and self.buffers[s][1] == layout), free[0])
        if self.buffers[slot] is None or self.buffers[slot][1] != layout:
            size = layout[-1].offset + layout[-1].nbytes
            self.buffers[slot] = (torch.empty(size, dtype=torch.uint8).share_memory_(), layout)
        self.busy[slot] = 1
        return slot


_pool: _Pool | None = None


def stack_batch(columns: dict[str, list[torch.Tensor]], rest: dict[str, Any]) -> dict[str, Any]:
    """``{key: torch.stack(tensors)}`` plus ``rest``; in a DataLoader worker, stacked into a reused shared buffer.

    Every list in ``columns`` holds tensors of one shape and dtype. Without a free buffer (the consumer keeps
    batches), or outside a worker, the tensors are stacked into new memory as ``default_collate`` does.
    """
    global _pool
    if get_worker_info() is None:
        return {**{key: torch.stack(tensors) for key, tensors in columns.items()}, **rest}
    if _pool is None or _pool.pid != os.getpid():
        _pool = _Pool()
    layout = _layout(columns)
    slot = _pool.take(layout)
    if slot is None:
        return {**{key: default_collate(tensors) for key, tensors in columns.items()}, **rest}
    flat = _pool.buffers[slot][0]
    views = _views(flat, layout)
    for key, tensors in columns.items():
        torch.stack(tensors, out=views[key])
    return _LeasedBatch({**views, **rest}, flat, layout, _pool.busy, slot)
