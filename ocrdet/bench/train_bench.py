"""``ocrdet bench train``: training throughput of the real training path, the same code on a CPU or a GPU.

Synthetic receipts are generated and prepared into the cache, then each precision runs what ``ocrdet train``
runs: ``DetectionDataModule`` (DataLoader workers, pinned memory on CUDA) feeding ``DBNetModule`` (forward,
DB loss, AdamW, LR schedule) in a Lightning ``Trainer`` with that precision plugin. After ``warmup`` steps
(worker start-up, cuDNN autotuning, compilation), ``steps`` optimizer steps are timed:

- steps/s and samples/s over the timed steps;
- data wait: the time between the end of one step and the start of the next (waiting for the DataLoader
  and copying the batch to the device) as a fraction of the total.

The rows of one run share the process, the data and the model settings, so their ratio is the speed-up of one
precision over another on that machine; run it on a CPU and on a GPU to compare the two tables.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ocrdet.bench.common import SYNTH_SEED, SourceView, synthetic_receipts, text_table
from ocrdet.data.config import CacheConfig, DataConfig
from ocrdet.data.pipeline import DetectionDataModule, NativeLoaders
from ocrdet.data.sources.cache import CacheSource
from ocrdet.data.sources.prepare import prepare_cache
from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.model.dbnet import ModelConfig
from ocrdet.parallel import usable_cores
from ocrdet.train.bottleneck import DATA, STEP, RunFacts, bottleneck_report
from ocrdet.train.module import DBNetModule
from ocrdet.train.resources import ResourceMonitor

MAX_IMAGES = 16
"""Distinct synthetic receipts generated; longer runs cycle over them (each step draws new random warps)."""


@dataclass(frozen=True)
class TrainBenchRow:
    """One precision's timed steps."""

    device: str
    precision: str
    """As the Trainer ran it (Lightning runs ``16-mixed`` as ``bf16-mixed`` on a CPU)."""
    backbone: str
    size: int
    batch_size: int
    workers: int
    steps: int
    seconds: float
    wait_seconds: float
    compile: bool = False
    monitor_cost: float = float("nan")
    """Fraction of the run the resource monitor (on by default in ``ocrdet train``) took, as it measured itself."""

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds

    @property
    def samples_per_s(self) -> float:
        return self.steps * self.batch_size / self.seconds

    @property
    def data_wait(self) -> float:
        """Fraction of the time spent waiting for the next batch."""
        return self.wait_seconds / self.seconds


def throughput(starts: Sequence[float], ends: Sequence[float], warmup: int) -> tuple[int, float, float]:
    """(steps timed, seconds, seconds waiting for data) of the steps after the first ``warmup`` (>= 1).

    ``starts[i]`` / ``ends[i]``: clock readings at the start and the end of training step i. The timed span runs
    from the end of the last warm-up step to the end of the last step; the wait before step i is
    ``starts[i] - ends[i - 1]``.
    """
    if not 1 <= warmup < len(starts) == len(ends):
        raise ValueError(f"need 1 <= warmup < steps, got warmup {warmup} of {len(starts)} steps")
    wait = sum(starts[i] - ends[i - 1] for i in range(warmup, len(starts)))
    return len(starts) - warmup, ends[-1] - ends[warmup - 1], wait


class StepClock(L.Callback):
    """Reads the clock at the start and the end of every training step (after the device finished its work)."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.ends.append(time.perf_counter())


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Keep Lightning's per-Trainer info lines (GPU available, ...) out of the table's way."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(
    source: SourceView,
    model: ModelConfig,
    data: DataConfig,
    device: str,
    precision: str,
    warmup: int,
    steps: int,
    compile: bool,
) -> TrainBenchRow:
    L.seed_everything(SYNTH_SEED, workers=True, verbose=False)
    every = min(10, max(1, (warmup + steps) // 2))
    clock, monitor = StepClock(), ResourceMonitor(every_n_steps=every, min_interval_s=0)
    with tempfile.TemporaryDirectory(prefix="ocrdet-bench-train-") as tmp:
        trainer = L.Trainer(
            accelerator=device,
            devices=1,
            precision=precision,
            max_steps=warmup + steps,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[clock, monitor],
            default_root_dir=tmp,
        )
        module = DBNetModule(model, eval_size=data.augment.size, eval_workers=0, compile=compile)
        trainer.fit(module, datamodule=DetectionDataModule(NativeLoaders(data, {True: source, False: source})))
    timed, seconds, wait = throughput(clock.starts, clock.ends, warmup)
    return TrainBenchRow(
        device=trainer.strategy.root_device.type,
        precision=str(trainer.precision),
        backbone=model.backbone,
        size=data.augment.size,
        batch_size=data.batch_size,
        workers=data.num_workers,
        steps=timed,
        seconds=seconds,
        wait_seconds=wait,
        compile=compile,
        monitor_cost=monitor.cost_s / (clock.ends[-1] - clock.starts[0]),
    )


def bench_train(
    device: str = "auto",
    steps: int = 20,
    batch_size: int = 8,
    size: int = AugmentConfig.size,
    backbone: str = ModelConfig.backbone,
    precisions: Sequence[str] = ("32-true", "bf16-mixed"),
    workers: int = DataConfig.num_workers,
    warmup: int = 3,
    compile: Sequence[bool] = (False,),
) -> list[TrainBenchRow]:
    """Time ``steps`` training steps (after ``warmup`` more) per precision on synthetic receipts.

    device: ``cpu``, ``cuda`` or ``auto`` (CUDA when there is one); size: side of the square training crops;
    workers: DataLoader worker processes; compile: run each precision with these ``compile`` settings (``torch.compile``
    of the model). Returns one row per (compile, precision), in order.
    """
    length = (warmup + steps) * batch_size
    with tempfile.TemporaryDirectory(prefix="ocrdet-bench-train-") as tmp, _quiet_lightning():
        root = synthetic_receipts(Path(tmp), "train", min(length, MAX_IMAGES))
        prepared = CacheSource(prepare_cache(root, "train", Path(tmp) / "cache", CacheConfig()))
        source = SourceView(prepared, [k % len(prepared) for k in range(length)])
        data = DataConfig(root=str(root), batch_size=batch_size, num_workers=workers, augment=AugmentConfig(size=size))
        model = ModelConfig(backbone=backbone)
        return [
            _run(source, model, data, device, precision, warmup, steps, compiled)
            for compiled in compile
            for precision in precisions
        ]


def describe_device(device: str) -> str:
    """The processor behind ``cpu`` or ``cuda`` rows, for the table's heading."""
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), name)
    threads = torch.get_num_threads()
    return f"cpu ({name}, {threads} thread{'s' if threads > 1 else ''})"


def format_table(rows: list[TrainBenchRow]) -> str:
    """The rows as a fixed-width table; ``vs first`` = steps/s relative to the first row."""
    header = ("device", "precision", "compile", "backbone", "size", "batch", "workers", "steps", "steps/s", "samples/s",
              "data wait", "vs first")  # fmt: skip
    lines = [header] + [
        (
            r.device,
            r.precision,
            "yes" if r.compile else "no",
            r.backbone,
            str(r.size),
            str(r.batch_size),
            str(r.workers),
            str(r.steps),
            f"{r.steps_per_s:.3g}",
            f"{r.samples_per_s:.3g}",
            f"{100 * r.data_wait:.1f}%",
            f"{r.steps_per_s / rows[0].steps_per_s:.2f}x",
        )
        for r in rows
    ]
    devices = ", ".join(describe_device(d) for d in dict.fromkeys(r.device for r in rows))
    return f"{devices}; torch {torch.__version__}\n" + text_table(lines, text_columns=4)


def bottleneck(rows: Sequence[TrainBenchRow]) -> str:
    """``bottleneck_report`` of the fastest row: the wait for data (and its copy) against the model step."""
    row = max(rows, key=lambda r: r.steps_per_s)
    facts = RunFacts(row.device, row.workers, usable_cores(), None, row.precision, row.compile)
    return bottleneck_report({DATA: row.data_wait, STEP: 1 - row.data_wait}, facts)
