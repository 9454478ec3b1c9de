"""Where a training run's time went, and the one setting most likely to help: ``StageClock`` measures the
stages of a ``Trainer.fit``, ``bottleneck_report`` turns fractions of the run into one paragraph.

Stages (fractions of the run's wall time from fit start to fit end):

- ``data loading``: waiting for the next batch (training and validation), less its copy to the device;
- ``host->device copy``: ``transfer_batch_to_device`` (finished on the GPU before the clock is read);
- ``model step``: training step (forward, loss, backward, optimizer);
- ``validation model``: validation steps, less the time handing maps to the metric;
- ``validation post-processing/metric``: the main process waiting for the background evaluator;
- ``checkpointing``: ``Trainer.save_checkpoint``;
- ``other``: the rest (start-up, logging, callbacks).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ocrdet.atomic import atomic_write_text

DATA, COPY, STEP, VAL_MODEL, VAL_METRIC, CHECKPOINT, OTHER = (
    "data loading",
    "host->device copy",
    "model step",
    "validation model",
    "validation post-processing/metric",
    "checkpointing",
    "other",
)
STAGES = (DATA, COPY, STEP, VAL_MODEL, VAL_METRIC, CHECKPOINT, OTHER)
SATURATED_WORKER_PCT = 85.0
"""A DataLoader worker using at least this much of a core is taken as busy all the time."""


@dataclass(frozen=True)
class RunFacts:
    """What the hints depend on."""

    device: str
    """``cpu`` or ``cuda``."""
    num_workers: int
    cores: int
    """CPU cores the run may use."""
    worker_cpu_pct: float | None = None
    """Mean CPU % of one DataLoader worker (100 = one core), when measured."""
    precision: str = "32-true"
    compile: bool = False
    eval_workers: int = 1


def _hint(stage: str, facts: RunFacts) -> str:
    """The one setting most likely to shorten ``stage``."""
    if stage == DATA:
        busy = facts.worker_cpu_pct is not None and facts.worker_cpu_pct >= SATURATED_WORKER_PCT
        load = f"workers at {facts.worker_cpu_pct:.0f}% CPU each" if facts.worker_cpu_pct is not None else ""
        if facts.num_workers < facts.cores:
            why = f"{facts.num_workers} workers on {facts.cores} cores" + (f", {load}" if load else "")
            return f"{why} -> data.num_workers=auto"
        if facts.device == "cuda":
            return f"{load or 'all cores busy'} -> data.backend=dali (decode and warp on the GPU)"
        return f"{load or 'all cores busy'}; workers and the model share {facts.cores} cores -> a GPU" + (
            "" if busy else ", or a smaller data.augment.size"
        )
    if stage == COPY:
        return "batches already travel as uint8 from pinned memory -> a larger data.batch_size (fewer copies)"
    if stage == STEP:
        if facts.device != "cuda":
            return "the model runs on the CPU -> train on a GPU (trainer.accelerator=gpu), or a smaller model.backbone"
        if facts.precision.startswith("32"):
            return "fp32 on a GPU -> trainer.precision=bf16-mixed"
        if not facts.compile:
            return "-> compile=true"
        return "mixed precision and compiled already -> a smaller model.backbone or data.augment.size"
    if stage == VAL_MODEL:
        return "-> validate less often (trainer.check_val_every_n_epoch) or on fewer batches (limit_val_batches)"
    if stage == VAL_METRIC:
        return f"{facts.eval_workers} evaluator workers -> eval_workers={max(2, 2 * facts.eval_workers)}"
    if stage == CHECKPOINT:
        return "-> checkpoint less often (trainer.check_val_every_n_epoch)"
    return "start-up, logging and callbacks -> longer runs amortise start-up; trainer.log_every_n_steps higher"


def bottleneck_report(fractions: Mapping[str, float], facts: RunFacts) -> str:
    """One paragraph: the stage with the largest fraction of the run, every measured fraction, and the hint."""
    if not fractions:
        raise ValueError("no stage was timed")
    worst = max(fractions, key=lambda s: fractions[s])
    kind = {DATA: "data-bound", COPY: "copy-bound", STEP: "compute-bound"}.get(worst, f"{worst}-bound")
    shares = ", ".join(f"{s} {100 * f:.0f}%" for s, f in sorted(fractions.items(), key=lambda i: -i[1]) if f >= 0.005)
    head = f"Bottleneck: {kind} ({100 * fractions[worst]:.0f}% of the time in {worst})."
    return f"{head} Time: {shares}. {_hint(worst, facts)}"


class StageClock(L.Callback):
    """Times the stages listed in the module docstring over one ``fit``; ``fractions()`` afterwards. Given
    ``facts`` (called at the fit's end), prints ``bottleneck_report`` then (on stderr) and writes it to
    ``report_path``.

    Copies, checkpoint saves and the validation metric's waits are timed by wrapping, for the duration of the
    fit, ``transfer_batch_to_device`` of the module, ``save_checkpoint`` of the trainer and ``submit`` /
    ``per_image`` of the module's ``evaluator`` (where it has one): Lightning calls them through the instance.
    """

    def __init__(self, facts: Callable[[], RunFacts] | None = None, report_path: Path | None = None) -> None:
        self.facts, self.report_path = facts, report_path
        self.report = ""
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.total = 0.0
        self._fit_start = 0.0
        self._last_end: float | None = None
        self._phase = ""
        self._phase_start = 0.0
        self._batch_start = 0.0
        self._val_batches = 0.0
        self._timed: dict[str, float] = {}
        """Seconds in the wrapped calls by (phase, what); reset per phase."""
        self._wrapped: list[tuple[Any, str]] = []

    def _wrap(self, obj: Any, name: str, what: str) -> None:
        original = getattr(obj, name)
        cuda = torch.cuda.is_available()

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            result = original(*args, **kwargs)
            if cuda and what == COPY:
                torch.cuda.synchronize()
            self._timed[what] = self._timed.get(what, 0.0) + time.perf_counter() - start
            return result

        setattr(obj, name, timed)
        self._wrapped.append((obj, name))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()
        self._wrap(pl_module, "transfer_batch_to_device", COPY)
        self._wrap(trainer, "save_checkpoint", CHECKPOINT)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds[CHECKPOINT] += self._timed.pop(CHECKPOINT, 0.0)
        for obj, name in self._wrapped:
            vars(obj).pop(name, None)
        self._wrapped = []
        self.total = time.perf_counter() - self._fit_start
        if self.facts is not None and trainer.is_global_zero:
            self.report = bottleneck_report(self.fractions(), self.facts())
            print(self.report, file=sys.stderr)  # stdout carries results only
            if self.report_path is not None:
                atomic_write_text(self.report_path, self.report + "\n")

    # training: data wait = start of a step - end of the previous one (or the epoch's start)
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        self._batch_start = time.perf_counter()
        if self._last_end is not None:
            copy = self._timed.pop(COPY, 0.0)
            self.seconds[COPY] += copy
            self.seconds[DATA] += self._batch_start - self._last_end - copy

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._last_end = time.perf_counter()
        self.seconds[STEP] += self._last_end - self._batch_start

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_end = None

    # validation: steps (less the metric hand-over), metric waits, and the rest of the loop as data loading
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._phase_start = time.perf_counter()
        self._val_batches = 0.0
        self._timed.pop(COPY, None)
        evaluator = getattr(pl_module, "evaluator", None)
        if evaluator is not None:
            for name in ("submit", "per_image"):
                if name not in vars(evaluator):
                    self._wrap(evaluator, name, VAL_METRIC)

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int, dataloader_idx: int = 0
    ) -> None:
        self._batch_start = time.perf_counter()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int, dl_idx: int = 0
    ) -> None:
        self._val_batches += time.perf_counter() - self._batch_start

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        span = time.perf_counter() - self._phase_start
        metric, copy = self._timed.pop(VAL_METRIC, 0.0), self._timed.pop(COPY, 0.0)
        # the metric waits happen inside the steps (submit) and after them (per_image at the epoch's end)
        self.seconds[VAL_METRIC] += metric
        self.seconds[COPY] += copy
        self.seconds[VAL_MODEL] += max(0.0, self._val_batches - metric)
        self.seconds[DATA] += max(0.0, span - max(self._val_batches, metric) - copy)
        if self._last_end is not None:  # validation within a training epoch is not a wait for training data
            self._last_end = time.perf_counter()

    def fractions(self) -> dict[str, float]:
        """Seconds per stage over the fit's wall time; ``other`` = what no stage accounts for."""
        if self.total <= 0:
            raise RuntimeError("StageClock: no fit was timed")
        measured = {s: v / self.total for s, v in self.seconds.items() if s != OTHER}
        return {**measured, OTHER: max(0.0, 1 - sum(measured.values()))}
