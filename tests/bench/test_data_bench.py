from pathlib import Path

import numpy as np
import pytest
import torch

from ocrdet.bench.common import baseline_items, format_table
from ocrdet.bench.data_bench import STAGES, bench_data, run_baseline, run_ours
from ocrdet.data.config import CacheConfig
from ocrdet.data.io.synth import generate_dataset
from ocrdet.data.sources.cache import CacheSource
from ocrdet.data.sources.prepare import prepare_cache
from ocrdet.data.transforms.maps import MAP_DTYPES, MAP_KEYS


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("receipts")
    generate_dataset(root, n_train=3, n_val=0, seed=1)
    return root


def test_both_pipelines_give_batches_of_the_same_shape(root: Path, tmp_path: Path) -> None:
    source = CacheSource(prepare_cache(root, "train", tmp_path, CacheConfig(long_side=400), workers=1))
    baseline = run_baseline(baseline_items(root, "train"), size=96, batch_size=3)
    ours = run_ours(source, [0, 1, 2], size=96, batch_size=3)
    for run in (baseline, ours):
        assert run.samples == 3 and set(run.seconds) == set(STAGES)
        assert all(seconds > 0 for seconds in run.seconds.values())
    assert baseline.batch["image"].dtype == torch.float32 and ours.batch["image"].dtype == torch.uint8
    assert baseline.batch["image"].permute(0, 2, 3, 1).shape == ours.batch["image"].shape == (3, 96, 96, 3)
    for key in MAP_KEYS:
        assert baseline.batch[key].shape == ours.batch[key].shape == (3, 96, 96)
        assert baseline.batch[key].dtype == torch.float32 and ours.batch[key].numpy().dtype == MAP_DTYPES[key]
    assert ours.batch["prob"].sum() > 0 and baseline.batch["prob"].sum() > 0


def test_bench_table_and_plot(tmp_path: Path) -> None:
    rows = bench_data(None, n=4, size=96, batch_size=2, plot=tmp_path / "bench.png", workers=2)
    assert [r.stage for r in rows] == [
        *STAGES,
        "total, 1 process",
        "total, DataLoader 2 workers",
        "prepare (one-off, not in totals)",
    ]
    total = rows[len(STAGES)]
    assert total.ours_ms == pytest.approx(sum(r.ours_ms for r in rows[: len(STAGES)]))
    assert all(r.ours_ms > 0 and np.isfinite(r.ours_per_s) for r in rows)
    assert all(np.isfinite(r.speedup) for r in rows[:-1]) and np.isnan(rows[-1].speedup)
    lines = format_table(rows).splitlines()
    assert lines[0].split()[:3] == ["stage", "baseline", "ms"] and set(lines[1]) == {"-"}
    assert len(lines) == len(rows) + 3 and all(
        line.startswith(r.stage) for line, r in zip(lines[2:-1], rows, strict=True)
    )
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
