"""What the machine does while a run trains: CPU of this process and of its DataLoader workers, memory, disk
reads, GPU utilisation and memory. ``ResourceMonitor`` logs it as ``sys/*`` beside ``perf/*``.

One sample reads a handful of ``/proc`` files through psutil (and NVML on a GPU), every ``every_n_steps`` steps;
``sys/monitor_cost`` logs the fraction of the training time the monitor itself took, so its price is measured,
not assumed.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import psutil


def dataloader_worker_pids(trainer: L.Trainer) -> list[int]:
    """Process ids of the training DataLoader's workers (persistent workers keep their iterator on the loader)."""
    loaders = trainer.train_dataloader
    loaders = loaders if isinstance(loaders, list | tuple) else [loaders]
    workers = [w for dl in loaders for w in getattr(getattr(dl, "_iterator", None), "_workers", None) or ()]
    return [w.pid for w in workers if w.pid is not None]


class _Gpu:
    """Utilisation and memory of one NVIDIA GPU through NVML; ``read`` gives {} where NVML is unavailable."""

    def __init__(self, index: int) -> None:
        self.handle: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # noqa: BLE001 - no driver, no NVML, no such device: the GPU columns are left out
            self.handle = None

    def read(self) -> dict[str, float]:
        if self.handle is None:
            return {}
        import pynvml

        util = pynvml.nvmlDeviceGetUtilizationRates(self.handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(self.handle)
        return {"sys/gpu_util_pct": float(util.gpu), "sys/gpu_mem_mb": memory.used / 2**20}


class ResourceSampler:
    """Resource use since the previous ``sample()`` (the first call starts the clock and returns {}).

    CPU percentages count one busy core as 100 (so 2 workers on 2 busy cores read 200 in ``workers_cpu_pct``);
    ``system_cpu_pct`` is the whole machine's, 0-100.
    """

    def __init__(self, gpu_index: int | None = None) -> None:
        self.process = psutil.Process()
        self.gpu = _Gpu(gpu_index) if gpu_index is not None else None
        self._workers: dict[int, psutil.Process] = {}
        self._last: float | None = None
        self._disk_read: int | None = None

    def _worker_cpu(self, pids: list[int]) -> list[float]:
        """CPU % of each live worker since its previous reading (0 for one seen for the first time)."""
        self._workers = {pid: self._workers.get(pid) or psutil.Process(pid) for pid in pids}
        usage = []
        for proc in list(self._workers.values()):
            try:
                usage.append(proc.cpu_percent())
            except psutil.Error:  # the worker ended between two readings
                self._workers.pop(proc.pid)
        return usage

    def sample(self, worker_pids: list[int]) -> dict[str, float]:
        now = time.perf_counter()
        disk = psutil.disk_io_counters()
        disk_read = disk.read_bytes if disk is not None else 0
        values = {
            "sys/process_cpu_pct": self.process.cpu_percent(),
            "sys/system_cpu_pct": psutil.cpu_percent(),
            "sys/rss_mb": self.process.memory_info().rss / 2**20,
        }
        workers = self._worker_cpu(worker_pids)
        first = self._last is None
        if not first:
            values["sys/disk_read_mb_s"] = (disk_read - (self._disk_read or 0)) / 2**20 / (now - self._last)
            if workers:
                values["sys/workers_cpu_pct"] = sum(workers)
                values["sys/worker_cpu_pct"] = sum(workers) / len(workers)
        if self.gpu is not None:
            values.update(self.gpu.read())
        self._last, self._disk_read = now, disk_read
        return {} if first else values


MIN_INTERVAL_S = 2.0
"""At most one sample per this many seconds: a sample costs a few ms (more with many workers), fast GPU steps
tens of ms, so sampling every ``every_n_steps`` alone could cost more than 1% of the step time."""


class ResourceMonitor(L.Callback):
    """Logs ``sys/*`` (see ``ResourceSampler``), ``perf/worker_samples_per_s`` (samples/s per DataLoader worker)
    and ``sys/monitor_cost`` (the monitor's own time as a fraction of the training time so far) every
    ``every_n_steps`` training steps, at most every ``min_interval_s`` seconds. ``worker_cpu_pct`` keeps the mean
    per-worker CPU % for the bottleneck report.
    """

    def __init__(self, every_n_steps: int = 10, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.every_n_steps, self.min_interval_s = every_n_steps, min_interval_s
        self.sampler: ResourceSampler | None = None
        self.cost_s = 0.0
        self._samples = 0
        self._run_start = self._window_start = 0.0
        self._worker_cpu: list[float] = []

    @property
    def worker_cpu_pct(self) -> float | None:
        """Mean CPU % of one DataLoader worker over the samples taken; None without workers or samples."""
        return sum(self._worker_cpu) / len(self._worker_cpu) if self._worker_cpu else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        device = pl_module.device
        self.sampler = ResourceSampler((device.index or 0) if device.type == "cuda" else None)
        self.sampler.sample(dataloader_worker_pids(trainer))  # the baseline of the first window
        self._run_start = self._window_start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        start = time.perf_counter()
        self._samples += len(batch["image"]) if isinstance(batch, dict) and "image" in batch else 0
        due = (batch_idx + 1) % self.every_n_steps == 0 and start - self._window_start >= self.min_interval_s
        if self.sampler is not None and due:
            pids = dataloader_worker_pids(trainer)
            values = self.sampler.sample(pids)
            if values:
                if "sys/worker_cpu_pct" in values:
                    self._worker_cpu.append(values["sys/worker_cpu_pct"])
                if pids:
                    values["perf/worker_samples_per_s"] = self._samples / (start - self._window_start) / len(pids)
                values["sys/monitor_cost"] = self.cost_s / (start - self._run_start)
                pl_module.log_dict(values, on_step=True, on_epoch=False)
            self._samples, self._window_start = 0, start
        self.cost_s += time.perf_counter() - start
