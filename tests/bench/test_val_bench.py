"""``ocrdet bench val``: one tiny validation epoch through both pipelines, and the command."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ocrdet.bench.val_bench import STAGES, bench_val, format_result
from ocrdet.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_val_rows_scores_table_and_plot(tmp_path: Path) -> None:
    result = bench_val(None, n=6, size=256, batch_size=4, plot=tmp_path / "val.png")
    rows = result.rows
    assert [r.stage for r in rows] == [*STAGES, "total", "prepare (one-off, not in totals)"]
    stages, total, prepare = rows[: len(STAGES)], rows[len(STAGES)], rows[-1]
    assert all(r.baseline_ms > 0 and r.ours_ms > 0 for r in stages)
    assert total.baseline_ms == pytest.approx(sum(r.baseline_ms for r in stages))
    assert total.ours_ms == pytest.approx(sum(r.ours_ms for r in stages))
    assert math.isnan(prepare.baseline_ms) and prepare.ours_ms > 0 and math.isnan(prepare.speedup)
    assert result.maps == "target" and result.baseline.images == result.ours.images == 6
    for run in (result.baseline, result.ours):
        assert 0.0 <= run.metrics["hmean"] <= 1.0
    assert result.baseline.metrics["gt_care"] == result.ours.metrics["gt_care"] > 0
    lines = format_result(result).splitlines()
    assert lines[0].split()[:3] == ["stage", "baseline", "ms"] and set(lines[1]) == {"-"}
    assert all(line.startswith(r.stage) for line, r in zip(lines[2:], rows, strict=False))
    assert lines[-2].startswith("H-mean") and f"{result.ours.metrics['hmean']:.4f}" in lines[-2]
    assert result.baseline.loss > 0 and result.ours.loss is None and lines[-1].startswith("val loss")
    assert (tmp_path / "val.png").read_bytes()[:8] == PNG


def test_bench_val_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "val.png"
    main(["bench", "val", "--n", "2", "--size", "128", "--batch-size", "2", "--maps", "model", "--plot", str(plot)])
    out = capsys.readouterr().out
    assert "postprocess + metric" in out and "(ms per image;" in out
    assert "post-processing the model's maps" in out and f"plot: {plot}" in out
    assert "\nBottleneck: " in out and "% of the time in " in out
    assert plot.read_bytes()[:8] == PNG


def test_bench_val_refuses_an_unknown_map_source() -> None:
    with pytest.raises(ValueError, match="maps must be one of"):
        bench_val(None, n=1, maps="labels")
