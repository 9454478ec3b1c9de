"""The run's skip report: what the check left out, then what failed at read time, written as it happens."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from ocrdet.data.check import Problem, read_skip_report
from ocrdet.train.callbacks import SkippedSamples


def test_skip_report_grows_as_samples_fail(tmp_path: Path) -> None:
    path = tmp_path / "run" / "skipped.json"
    checked = Problem("undecodable", "a.jpg", None, "empty file")
    callback = SkippedSamples(path, "train", "val", {"train": [checked], "val": []})
    trainer, module = SimpleNamespace(is_global_zero=True), None
    callback.on_fit_start(trainer, module)
    assert read_skip_report(path) == {"train": [checked], "val": []}

    failed = {"file": "b.jpg", "reason": "corrupt JPEG: Premature end of JPEG file"}
    for _ in range(2):
        callback.on_train_batch_start(trainer, module, {"skipped": [failed]}, 0)
    callback.on_validation_batch_start(trainer, module, {"skipped": []}, 0)
    callback.on_validation_batch_start(trainer, module, {"skipped": [{"file": "v.jpg", "reason": "gone"}]}, 0)
    assert read_skip_report(path) == {
        "train": [checked, Problem("read", "b.jpg", None, failed["reason"])],
        "val": [Problem("read", "v.jpg", None, "gone")],
    }
    assert sorted(p.name for p in path.parent.iterdir()) == ["skipped.json"]
