"""``data.num_workers=auto``: measure the training DataLoader at 0..N workers (N = usable cores), take the
smallest count within ``TOLERANCE`` of the best rate, and remember the choice beside the prepared cache.

Each count reads ``samples`` training samples (after one warm-up batch, so worker start-up is not timed) through
the same DataLoader that training uses; CPU use is this process's and its workers' CPU time over the timed span
(100% = one core busy).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ocrdet.atomic import atomic_write_text
from ocrdet.parallel import usable_cores

TOLERANCE = 0.05
"""A worker count within this fraction of the best rate is as good; the smallest such count wins."""
SAMPLES = 256
CHOICE_FILE = "num_workers.json"
"""Written into the training split's prepared cache folder: the choice, the key it holds for, the table."""


@dataclass(frozen=True)
class WorkerRate:
    workers: int
    samples_per_s: float
    cpu_pct: float
    """This process and its workers together; 100 = one core."""

    @property
    def cpu_pct_per_worker(self) -> float:
        """CPU % per loading process (the main process itself when there are no workers)."""
        return self.cpu_pct / max(1, self.workers)


def _cpu_seconds(process: psutil.Process) -> float:
    """CPU time of ``process`` and its live children (DataLoader workers)."""
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


LoaderFactory = Callable[[int], Iterable[Any]]
"""Worker count -> the training DataLoader with that many workers (batches: dicts with an ``image`` batch)."""


def measure_rate(make_loader: LoaderFactory, workers: int, samples: int) -> WorkerRate:
    """Samples/s and CPU % of ``make_loader(workers)`` over at least ``samples`` samples."""
    loader = make_loader(workers)
    process = psutil.Process()
    iterator = iter(loader)
    next(iterator)  # worker start-up and first-call costs
    seen, wall, cpu = 0, time.perf_counter(), _cpu_seconds(process)
    while seen < samples:
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            continue
        seen += len(batch["image"])
    # the workers' CPU time is read while they live, before the loader is dropped and they end
    cpu, wall = _cpu_seconds(process) - cpu, time.perf_counter() - wall
    del iterator, loader
    gc.collect()
    return WorkerRate(workers, seen / wall, 100 * cpu / wall)


def choose(rates: Sequence[WorkerRate], tolerance: float = TOLERANCE) -> int:
    """The smallest worker count whose rate is within ``tolerance`` of the best."""
    best = max(r.samples_per_s for r in rates)
    return min(r.workers for r in rates if r.samples_per_s >= (1 - tolerance) * best)


def measure_workers(
    make_loader: LoaderFactory, max_workers: int | None = None, samples: int | None = None
) -> list[WorkerRate]:
    """``measure_rate`` at 0..``max_workers`` workers (default: the usable cores) over ``samples`` (default
    ``SAMPLES``) samples each."""
    top = usable_cores() if max_workers is None else max_workers
    return [measure_rate(make_loader, n, samples or SAMPLES) for n in range(top + 1)]


def format_rates(rates: Sequence[WorkerRate], chosen: int) -> str:
    lines = [f"{'workers':>7}  {'samples/s':>9}  {'CPU %':>6}  {'CPU %/worker':>12}"]
    for r in rates:
        mark = "  <- chosen" if r.workers == chosen else ""
        lines.append(f"{r.workers:>7}  {r.samples_per_s:>9.1f}  {r.cpu_pct:>6.0f}  {r.cpu_pct_per_worker:>12.0f}{mark}")
    return "\n".join(lines) + f"\n(the fewest workers within {TOLERANCE:.0%} of the best rate)"


def choice_key(batch_size: int, settings: dict[str, Any]) -> dict[str, Any]:
    """What a saved choice holds for: this machine (CPU, usable cores), the batch size and the item settings."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": usable_cores(),
        "batch_size": batch_size,
        "settings": json.loads(json.dumps(settings, default=str)),
    }


def saved_choice(folder: Path, key: dict[str, Any]) -> int | None:
    """The worker count saved in ``folder`` for ``key``, else None (none saved, another key, unreadable)."""
    try:
        saved = json.loads((folder / CHOICE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return int(saved["workers"]) if isinstance(saved, dict) and saved.get("key") == key else None


def save_choice(folder: Path, key: dict[str, Any], chosen: int, rates: Sequence[WorkerRate]) -> None:
    table = [dataclasses.asdict(r) for r in rates]
    atomic_write_text(folder / CHOICE_FILE, json.dumps({"key": key, "workers": chosen, "rates": table}, indent=1))


def auto_workers(
    make_loader: LoaderFactory,
    batch_size: int,
    folder: Path | None,
    settings: dict[str, Any],
    report: Callable[[str], None] = print,
) -> int:
    """The saved choice in ``folder`` for this machine and settings; else measure, report the table, save it
    (when ``folder`` is given: the prepared cache's) and return the choice."""
    key = choice_key(batch_size, settings)
    if folder is not None and (chosen := saved_choice(folder, key)) is not None:
        report(f"data.num_workers=auto: {chosen} (measured before, saved in {folder / CHOICE_FILE})")
        return chosen
    report(f"data.num_workers=auto: measuring {SAMPLES} samples at 0..{usable_cores()} workers")
    rates = measure_workers(make_loader)
    chosen = choose(rates)
    report(format_rates(rates, chosen))
    if folder is not None:
        save_choice(folder, key, chosen, rates)
    return chosen
