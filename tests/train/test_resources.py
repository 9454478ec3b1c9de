"""The resource monitor: what it logs during a real fit (with DataLoader workers), and its own measured cost."""

from __future__ import annotations

import csv

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, Dataset

from ocrdet.train.resources import ResourceMonitor, ResourceSampler


class _Batches(Dataset):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": torch.rand(3, 16, 16)}


class _Net(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Conv2d(3, 3, 3, padding=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(batch["image"]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_fit_logs_process_system_worker_and_monitor_figures(tmp_path):
    monitor = ResourceMonitor(every_n_steps=2, min_interval_s=0)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=CSVLogger(tmp_path, name="logs"),
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[monitor],
    )
    loader = DataLoader(_Batches(), batch_size=2, num_workers=2, persistent_workers=True)
    trainer.fit(_Net(), train_dataloaders=loader)
    with open(next(tmp_path.glob("logs/version_*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    logged = {key for row in rows for key, value in row.items() if value}
    expected = {"sys/process_cpu_pct", "sys/system_cpu_pct", "sys/rss_mb", "sys/disk_read_mb_s", "sys/monitor_cost"}
    assert expected | {"sys/workers_cpu_pct", "sys/worker_cpu_pct", "perf/worker_samples_per_s"} <= logged
    assert "sys/gpu_util_pct" not in logged  # no GPU here
    rss = [float(row["sys/rss_mb"]) for row in rows if row.get("sys/rss_mb")]
    assert all(value > 10 for value in rss)
    assert 0 < monitor.cost_s and 0 < max(float(r["sys/monitor_cost"]) for r in rows if r.get("sys/monitor_cost")) < 1
    assert monitor.worker_cpu_pct is not None and monitor.worker_cpu_pct >= 0


def test_the_first_sample_only_starts_the_clock():
    sampler = ResourceSampler()
    assert sampler.sample([]) == {}
    values = sampler.sample([])
    assert values["sys/rss_mb"] > 0 and 0 <= values["sys/system_cpu_pct"] <= 100
    assert "sys/workers_cpu_pct" not in values  # no workers
