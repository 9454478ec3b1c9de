"""Batches stacked into reused shared buffers: the same values as a plain stack, and never overwritten while read."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ocrdet.data.loaders import native as shared_batch
from ocrdet.data.loaders.native import POOL_SIZE, stack_batch


def _item(index: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(index)
    return {
        "image": torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8, generator=g),
        "thresh": torch.rand((5, 7), generator=g),
        "index": index,
    }


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    columns = {key: [it[key] for it in items] for key in ("image", "thresh")}
    return stack_batch(columns, {"index": [it["index"] for it in items]})


class _Items(Dataset):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _item(index)


def _expected(indices: list[int]) -> dict[str, torch.Tensor]:
    items = [_item(i) for i in indices]
    return {key: torch.stack([it[key] for it in items]) for key in ("image", "thresh")}


def _check(batch: dict[str, Any]) -> None:
    expected = _expected(batch["index"])
    assert list(batch) == ["image", "thresh", "index"]
    assert torch.equal(batch["image"], expected["image"])
    assert torch.equal(batch["thresh"], expected["thresh"])


@pytest.fixture
def in_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process plays a DataLoader worker with a fresh pool."""
    monkeypatch.setattr(shared_batch, "get_worker_info", lambda: object())
    monkeypatch.setattr(shared_batch, "_pool", None)


def _inode(tensor: torch.Tensor) -> int:
    """The shared-memory segment holding ``tensor``."""
    fd, _ = tensor.untyped_storage()._share_fd_cpu_()
    return os.fstat(fd).st_ino


def test_outside_a_worker_it_is_a_plain_stack() -> None:
    batch = _collate([_item(i) for i in (3, 1)])
    assert type(batch) is dict
    _check(batch)


def test_a_free_buffer_is_reused_and_a_busy_one_is_not(in_worker: None) -> None:
    first = _collate([_item(i) for i in (0, 1)])
    second = _collate([_item(i) for i in (2, 3)])
    assert shared_batch._pool.busy.tolist()[:3] == [1, 1, 0]
    assert first["image"].data_ptr() != second["image"].data_ptr()
    shared_batch._pool.busy[0] = 0  # the consumer dropped the first batch
    third = _collate([_item(i) for i in (4, 5)])
    assert third["image"].data_ptr() == first["image"].data_ptr()
    _check(second)
    _check(third)


def test_with_every_buffer_in_use_it_stacks_into_new_memory(in_worker: None) -> None:
    held = [_collate([_item(2 * k), _item(2 * k + 1)]) for k in range(POOL_SIZE + 2)]
    assert shared_batch._pool.busy.tolist() == [1] * POOL_SIZE
    assert len({batch["image"].data_ptr() for batch in held}) == len(held)
    for batch in held:
        _check(batch)


def test_a_free_buffer_of_another_shape_is_replaced(in_worker: None) -> None:
    _collate([_item(0), _item(1)])
    shared_batch._pool.busy[0] = 0
    last = _collate([_item(2)])
    assert last["image"].shape == (1, 5, 7, 3)
    _check(last)


@pytest.mark.parametrize("keep", [False, True], ids=["dropped", "kept"])
def test_through_a_dataloader_buffers_come_back_only_when_dropped(keep: bool) -> None:
    """Two persistent workers, three epochs of 6 batches. Dropped batches free their buffers, which the workers
    stack the next ones into; kept batches each keep their own memory and their values."""
    loader = DataLoader(_Items(), batch_size=4, num_workers=2, persistent_workers=True, collate_fn=_collate)
    kept, segments = [], []
    for _ in range(3):
        for batch in loader:
            assert type(batch) is dict
            _check(batch)
            segments.append(_inode(batch["image"]))
            if keep:
                kept.append(batch)
    if keep:
        assert len(set(segments)) == len(segments)
        for batch in kept:
            _check(batch)
    else:
        assert len(set(segments)) <= 2 * POOL_SIZE < len(segments)
