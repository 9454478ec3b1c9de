"""Callbacks that tell a user what training did: throughput, data wait, memory, torch.profiler traces, and
the images it left out."""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ocrdet.data.check import READ, Problem, write_skip_report

log = logging.getLogger(__name__)


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory of this process on CUDA, else its peak resident memory, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ThroughputMonitor(L.Callback):
    """Logs ``perf/samples_per_s``, ``perf/data_wait`` (fraction of step time spent waiting for the
    DataLoader) and ``perf/peak_mem_mb`` every ``every_n_steps`` training steps."""

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = every_n_steps
        self._reset()

    def _reset(self) -> None:
        self._samples = 0
        self._wait = 0.0
        self._start = time.perf_counter()
        self._last_end: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self._wait += now - self._last_end

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self._samples += len(batch["image"])
        now = time.perf_counter()
        self._last_end = now
        if (batch_idx + 1) % self.every_n_steps:
            return
        elapsed = now - self._start
        pl_module.log_dict(
            {
                "perf/samples_per_s": self._samples / elapsed,
                "perf/data_wait": self._wait / elapsed,
                "perf/peak_mem_mb": peak_memory_mb(pl_module.device),
            },
            on_step=True,
            on_epoch=False,
        )
        self._samples, self._wait, self._start = 0, 0.0, now


class TorchProfilerCallback(L.Callback):
    """Runs ``torch.profiler`` over ``steps`` training steps (after 2 warm-up steps) and writes a Chrome
    trace (open in chrome://tracing or Perfetto) plus a table of the top operators to ``out_dir``."""

    def __init__(self, steps: int, out_dir: str | Path) -> None:
        self.steps = steps
        self.out_dir = Path(out_dir)
        self._profiler: torch.profiler.profile | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._profiler = torch.profiler.profile(
            activities=activities,
            schedule=torch.profiler.schedule(wait=1, warmup=1, active=self.steps, repeat=1),
            on_trace_ready=self._write,
            record_shapes=True,
            profile_memory=True,
        )
        self._profiler.start()

    def _write(self, profiler: torch.profiler.profile) -> None:
        profiler.export_chrome_trace(str(self.out_dir / "trace.json"))
        table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        (self.out_dir / "top_ops.txt").write_text(table)
        print(
            f"torch.profiler: trace in {self.out_dir / 'trace.json'}, top operators in {self.out_dir / 'top_ops.txt'}"
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._profiler is not None:
            self._profiler.step()
            if trainer.global_step >= self.steps + 2:
                self._profiler.stop()
                self._profiler = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._profiler is not None:
            self._profiler.stop()
            self._profiler = None


class SkippedSamples(L.Callback):
    """Keeps ``path`` (``run_dir/skipped.json``, ``{split: [problem, ...]}``) listing every image the run left out:
    those the data check found unusable (``skipped``) and, as they happen, those that failed when a DataLoader
    worker read them (each batch's ``skipped``, with ``on_bad_sample=skip``). Written at the start, always."""

    def __init__(
        self, path: str | Path, train_split: str, val_split: str, skipped: dict[str, Sequence[Problem]]
    ) -> None:
        self.path = Path(path)
        self.splits = {"train": train_split, "val": val_split}
        self.skipped = {split: list(problems) for split, problems in skipped.items()}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            write_skip_report(self.path, self.skipped)

    def _record(self, trainer: L.Trainer, stage: str, batch: Any) -> None:
        split = self.splits[stage]
        known = {p.file for p in self.skipped.setdefault(split, [])}
        entries = batch.get("skipped", ()) if isinstance(batch, dict) else ()
        new = [Problem(READ, entry["file"], None, entry["reason"]) for entry in entries]
        new = [p for p in new if p.file not in known]
        if not new:
            return
        for problem in new:
            log.warning("skipped %s image %s", split, problem)
        self.skipped[split] += new
        if trainer.is_global_zero:
            write_skip_report(self.path, self.skipped)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._record(trainer, "train", batch)

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._record(trainer, "val", batch)
