"""The bottleneck report: the stage fractions of real fits built to be data-bound and compute-bound, and the hints."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ocrdet.train.bottleneck import (
    CHECKPOINT,
    DATA,
    OTHER,
    STAGES,
    STEP,
    VAL_MODEL,
    RunFacts,
    StageClock,
    bottleneck_report,
)


class _Images(Dataset):
    """Random 3x32x32 images; ``delay`` seconds per item stands for a slow transform."""

    def __init__(self, n: int, delay: float) -> None:
        self.n, self.delay = n, delay

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.delay:
            time.sleep(self.delay)
        return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(index))


class _Net(L.LightningModule):
    """A conv net whose ``width`` sets how much compute a step costs."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(width, 3, 3, padding=1)
        )

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return (self.net(batch) - batch).square().mean()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.net(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(tmp_path, width: int, delay: float, report: bool = True) -> StageClock:
    facts = RunFacts("cpu", num_workers=0, cores=2)
    clock = StageClock((lambda: facts) if report else None, tmp_path / "bottleneck.txt" if report else None)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[clock],
    )
    loader = DataLoader(_Images(16, delay), batch_size=4)
    trainer.fit(_Net(width), train_dataloaders=loader, val_dataloaders=DataLoader(_Images(8, delay), batch_size=4))
    return clock


def test_a_slow_transform_makes_the_run_data_bound(tmp_path):
    clock = _fit(tmp_path, width=4, delay=0.05)
    fractions = clock.fractions()
    assert set(fractions) == set(STAGES)
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert max(fractions, key=fractions.get) == DATA and fractions[DATA] > 0.5, fractions
    assert clock.report.startswith("Bottleneck: data-bound"), clock.report
    assert "data.num_workers=auto" in clock.report  # 0 workers on 2 cores
    assert (tmp_path / "bottleneck.txt").read_text().strip() == clock.report
    assert fractions[CHECKPOINT] > 0, fractions  # the Trainer's default checkpoint at the epoch's end was timed


def test_a_heavy_model_step_makes_the_run_compute_bound(tmp_path):
    fractions = _fit(tmp_path, width=256, delay=0.0).fractions()
    assert max(fractions, key=fractions.get) == STEP and fractions[STEP] > 0.5, fractions
    assert fractions[DATA] < 0.2 and fractions[VAL_MODEL] > 0, fractions


def test_the_report_names_the_largest_stage_and_the_hint_fits_the_machine():
    fractions = {DATA: 0.38, STEP: 0.52, OTHER: 0.1}
    gpu = RunFacts("cuda", num_workers=16, cores=16, precision="32-true")
    assert bottleneck_report(fractions, gpu) == (
        "Bottleneck: compute-bound (52% of the time in model step). Time: model step 52%, data loading 38%, "
        "other 10%. fp32 on a GPU -> trainer.precision=bf16-mixed"
    )
    data_bound = {DATA: 0.6, STEP: 0.4}
    few_workers = RunFacts("cuda", num_workers=2, cores=16, worker_cpu_pct=99.0)
    assert bottleneck_report(data_bound, few_workers).endswith(
        "2 workers on 16 cores, workers at 99% CPU each -> data.num_workers=auto"
    )
    saturated = RunFacts("cuda", num_workers=16, cores=16, worker_cpu_pct=97.0)
    assert "data.backend=dali" in bottleneck_report(data_bound, saturated)
    compiled_bf16 = RunFacts("cuda", 16, 16, precision="bf16-mixed", compile=False)
    assert bottleneck_report({STEP: 1.0}, compiled_bf16).endswith("compile=true")
    with pytest.raises(ValueError, match="no stage"):
        bottleneck_report({}, gpu)
