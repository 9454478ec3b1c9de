"""``ocrdet bench train``: the arithmetic of the timing, and one tiny run through the real training path."""

from __future__ import annotations

import pytest

from ocrdet.bench.train_bench import bench_train, format_table, throughput


def test_throughput_counts_only_the_steps_after_warmup():
    starts = [0.0, 2.0, 5.0, 9.0]
    ends = [1.0, 4.0, 8.0, 10.0]
    # timed: steps 1-3, from the end of step 0 (t=1) to the end of step 3 (t=10); waits 2-1, 5-4, 9-8
    assert throughput(starts, ends, warmup=1) == (3, 9.0, 3.0)
    assert throughput(starts, ends, warmup=3) == (1, 2.0, 1.0)
    for warmup in (0, 4):
        with pytest.raises(ValueError, match="warmup"):
            throughput(starts, ends, warmup)


def test_bench_train_times_the_training_steps_on_cpu():
    rows = bench_train("cpu", steps=2, batch_size=2, size=64, precisions=("32-true",), workers=0, warmup=1)
    assert len(rows) == 1
    row = rows[0]
    assert (row.device, row.precision, row.backbone, row.size, row.batch_size, row.steps) == (
        "cpu",
        "32-true",
        "resnet18",
        64,
        2,
        2,
    )
    assert row.seconds > 0 and 0 <= row.wait_seconds < row.seconds
    assert row.samples_per_s == pytest.approx(2 * row.steps_per_s)
    assert 0 <= row.data_wait < 1
    assert 0 < row.monitor_cost < 1 and not row.compile
    lines = format_table(rows).splitlines()
    assert lines[0].startswith("cpu (") and "torch" in lines[0]
    assert lines[1].split()[:2] == ["device", "precision"] and set(lines[2]) == {"-"}
    assert lines[3].split()[:2] == ["cpu", "32-true"] and lines[3].endswith("1.00x")


def test_bottleneck_of_the_fastest_row():
    from ocrdet.bench.train_bench import TrainBenchRow, bottleneck

    def row(precision: str, seconds: float, wait: float) -> TrainBenchRow:
        return TrainBenchRow("cuda", precision, "resnet18", 640, 16, 16, 10, seconds, wait)

    text = bottleneck([row("32-true", 10.0, 1.0), row("bf16-mixed", 5.0, 3.0)])
    assert text.startswith("Bottleneck: data-bound (60% of the time in data loading)")
