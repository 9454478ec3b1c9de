"""Checkpoints that survive interruptions: atomic writes, weights-only reads, a clean stop on Ctrl-C / SIGTERM.

Lightning's own writer stages a checkpoint in the system's temporary folder and moves it into place, which
is a plain copy, not atomic, when that folder is on another file system; a kill during the copy leaves half
a ``last.ckpt``. ``AtomicCheckpointIO`` writes next to the target, fsyncs and renames instead.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ocrdet.atomic import atomic_open
from ocrdet.checkpoint import CheckpointError, read_checkpoint

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def load_model_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Copy the ``model.*`` weights of the checkpoint at ``path`` into ``model`` (``init=CKPT``).

    The file is read as data only (``read_checkpoint``); CheckpointError names it when it holds no ocrdet model
    weights or they do not fit ``model`` (another backbone or width).
    """
    ckpt = read_checkpoint(path)
    state = ckpt.get("state_dict")
    weights = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")} if state else {}
    if not weights:
        raise CheckpointError(f"{path}: no model weights to start from (not an ocrdet checkpoint)")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(
            f"{path}: its weights do not fit this run's model (set the same model.* as it was trained with): {reason}"
        ) from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """``Trainer(plugins=[AtomicCheckpointIO()])``: a checkpoint file is complete or absent, never half written;
    reading loads weights and plain data only and names a damaged file (``CheckpointError``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        try:
            with atomic_open(path) as f:
                torch.save(checkpoint, f)
        except (OSError, RuntimeError) as exc:
            # torch's zip writer turns a failed write into "inline_container.cc ... unexpected pos"; the OSError
            # behind it (disk full, quota) is what the user can act on, with the file named
            cause = exc if isinstance(exc, OSError) else exc.__context__
            if isinstance(cause, OSError) and cause.errno is not None and cause.filename is None:
                raise OSError(cause.errno, cause.strerror, str(path)) from None
            raise

    def load_checkpoint(
        self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location)


class StopOnSignal(L.Callback):
    """Ctrl-C or SIGTERM during training: finish the current step, save ``path`` atomically, stop.

    The first signal asks for a stop at the start of the next training step, where model, optimizer,
    scheduler and loop counters agree; the checkpoint is written there and Lightning ends the run (exit
    status 1). ``resume=true`` continues from it: same epoch, global step, optimizer and scheduler state.
    A second Ctrl-C stops at once and writes nothing (the last checkpoint saved stays as it was).
    Single-process runs only (in a multi-process run the ranks would not stop at the same step), and only
    when training runs in the main thread, where Python delivers signals.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._requested: str | None = None
        self._stopping = False
        self._previous: dict[int, Callable[..., Any] | int | None] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._requested = signal.Signals(signum).name
        print(
            f"\n{self._requested}: stopping at the end of this training step and saving {self.path} "
            "(Ctrl-C again stops at once without saving)",
            file=sys.stderr,
        )

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._requested is not None:
            self._stopping = True
            raise KeyboardInterrupt(f"stopped by {self._requested}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        try:
            if self._stopping:
                trainer.save_checkpoint(self.path, weights_only=False)
                print(f"saved {self.path}; continue with resume=true", file=sys.stderr)
        finally:
            self._restore()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
