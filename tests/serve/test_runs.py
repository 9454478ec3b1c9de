"""Reading a run directory: curves across log versions, malformed logs, the newest bench output."""

from __future__ import annotations

import os

import pytest

from ocrdet.serve.runs import CURVES, RunLogError, latest_bench, read_curves


def test_curves_in_version_order(tmp_path):
    for version, rows in ((10, "100,1.0"), (2, "50,2.0"), (1, "0,3.0")):  # 10 sorts after 2 by number
        folder = tmp_path / "logs" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text(f"epoch,step,train/loss,val/hmean\n0,{rows},\n0,7,,nan\n")
    curves = read_curves(tmp_path)
    assert set(curves) == set(CURVES)
    assert curves["train/loss"] == [(0.0, 3.0), (50.0, 2.0), (100.0, 1.0)]
    assert curves["val/hmean"] == [] and curves["perf/data_wait"] == []  # NaN and never logged


def test_malformed_log_names_file_and_line(tmp_path):
    folder = tmp_path / "logs" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,train/loss\n0,1.0\n1,oops\n")
    with pytest.raises(RunLogError, match=r"version_0/metrics.csv, line 3: .*'train/loss'"):
        read_curves(tmp_path)


def test_latest_bench_is_the_newest_file(tmp_path):
    assert latest_bench(tmp_path) == latest_bench(tmp_path / "none")
    assert latest_bench(tmp_path).table is None and latest_bench(tmp_path).chart is None
    bench = tmp_path / "bench"
    bench.mkdir()
    for i, name in enumerate(("b.txt", "a.txt", "a.png")):
        (bench / name).write_text(name)
        os.utime(bench / name, (1000 + i, 1000 + i))
    found = latest_bench(tmp_path)
    assert (found.table.name, found.chart.name) == ("a.txt", "a.png")


def test_a_log_that_is_not_utf8_is_named(tmp_path):
    folder = tmp_path / "logs" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_bytes(b"step,train/loss\n0,1.0\n" + b"\xff\xfe,2\n")
    with pytest.raises(RunLogError, match=r"version_0/metrics.csv: not UTF-8 text \(byte 22\)"):
        read_curves(tmp_path)


def test_resource_curves_are_read(tmp_path):
    folder = tmp_path / "logs" / "version_0"
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,sys/process_cpu_pct,sys/rss_mb\n10,180.5,900\n20,190,910\n")
    curves = read_curves(tmp_path)
    assert curves["sys/process_cpu_pct"] == [(10.0, 180.5), (20.0, 190.0)]
    assert curves["sys/rss_mb"] == [(10.0, 900.0), (20.0, 910.0)]
    assert curves["sys/gpu_util_pct"] == []  # no GPU: never logged
