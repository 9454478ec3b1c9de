"""``data.num_workers=auto``: the choice rule, the measurement, and the choice saved beside the cache."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ocrdet.data.config import DataConfig
from ocrdet.data.loaders.workers import CHOICE_FILE, WorkerRate, auto_workers, choose, format_rates, measure_rate
from ocrdet.data.pipeline import make_datamodule
from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.parallel import usable_cores


class _Items(Dataset):
    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": torch.full((4, 4, 3), index, dtype=torch.uint8)}


def _loader(workers: int) -> DataLoader:
    return DataLoader(_Items(), batch_size=4, num_workers=workers)


def test_the_fewest_workers_within_5_percent_of_the_best_rate_win():
    rates = [WorkerRate(0, 10.0, 100), WorkerRate(1, 19.0, 100), WorkerRate(2, 20.0, 190), WorkerRate(3, 20.5, 280)]
    assert choose(rates) == 2  # 20.0 >= 0.95 * 20.5; 19.0 is not
    assert choose(rates, tolerance=0.1) == 1
    table = format_rates(rates, 2)
    assert "<- chosen" in table.splitlines()[3] and table.splitlines()[3].split()[0] == "2"
    assert rates[3].cpu_pct_per_worker == pytest.approx(280 / 3)


@pytest.mark.parametrize("workers", [0, 1])
def test_measure_rate_counts_samples_and_cpu(workers):
    rate = measure_rate(_loader, workers, samples=64)
    assert rate.workers == workers and rate.samples_per_s > 0 and rate.cpu_pct >= 0


def test_the_choice_is_saved_and_reused_for_the_same_machine_and_settings(tmp_path):
    lines: list[str] = []
    chosen = auto_workers(_loader, 4, tmp_path, {"size": 64}, report=lines.append)  # 256 tiny samples per count
    saved = json.loads((tmp_path / CHOICE_FILE).read_text())
    assert saved["workers"] == chosen and [r["workers"] for r in saved["rates"]] == list(range(usable_cores() + 1))
    assert any("<- chosen" in line for line in lines)

    def refuse(workers: int) -> DataLoader:
        raise AssertionError("measured again")

    lines.clear()
    assert auto_workers(refuse, 4, tmp_path, {"size": 64}, report=lines.append) == chosen
    assert "measured before" in lines[0]
    with pytest.raises(AssertionError, match="measured again"):  # other settings: another measurement
        auto_workers(refuse, 4, tmp_path, {"size": 128}, report=lines.append)


def test_num_workers_is_a_count_or_auto():
    assert DataConfig(num_workers="auto").num_workers == "auto"
    for bad in (-1, "many"):
        with pytest.raises(ValueError, match="data.num_workers must be a count >= 0 or 'auto'"):
            DataConfig(num_workers=bad)


def test_auto_is_resolved_once_per_cache(root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("ocrdet.data.loaders.workers.SAMPLES", 16)  # a few hundred in real runs
    config = DataConfig(
        root=str(root), cache_dir=str(tmp_path / "cache"), num_workers="auto", batch_size=2,
        augment=AugmentConfig(size=64), eval_size=64,
    )  # fmt: skip
    first = make_datamodule(config, seed=0).loaders.config.num_workers
    assert isinstance(first, int) and 0 <= first <= usable_cores()
    assert "<- chosen" in capsys.readouterr().out
    assert len(list((tmp_path / "cache").glob(f"*/{CHOICE_FILE}"))) == 1
    assert make_datamodule(config, seed=0).loaders.config.num_workers == first
    assert "measured before" in capsys.readouterr().out
