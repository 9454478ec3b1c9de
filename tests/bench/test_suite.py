"""``ocrdet bench suite`` and ``ocrdet bench compare``: the JSON, the chart, the regression rule."""

from __future__ import annotations

import copy
import json

import pytest

from ocrdet.bench.compare import compare
from ocrdet.bench.suite import BENCHES, MACHINE_KEYS, read_result, run_suite
from ocrdet.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_one_bench_writes_rows_facts_and_chart(tmp_path):
    json_path = tmp_path / "r" / "s.json"
    result = run_suite("cpu", quick=True, json_path=json_path, plot=tmp_path / "s.png", only=("decode",))
    data = read_result(json_path)
    assert set(MACHINE_KEYS) <= set(data["facts"]) and data["facts"]["cores"] >= 1
    assert data["facts"]["ocrdet_commit"] and "torch" in data["facts"]["libraries"]
    assert not data["errors"] and set(data["seconds"]) == {"decode"}
    assert {r["bench"] for r in data["rows"]} == {"decode"} and len(data["rows"]) == len(result.rows)
    assert all(r["value"] > 0 for r in data["rows"])
    assert data["reports"]["decode"] == "decoder predict chooses on cpu: cpu"
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG


def test_bad_requests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown bench"):
        run_suite("cpu", True, tmp_path / "s.json", only=("nope",))
    with pytest.raises(ValueError, match="device must be cpu or cuda"):
        run_suite("tpu", True, tmp_path / "s.json")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="x.json: not an `ocrdet bench suite` result"):
        read_result(tmp_path / "x.json")


def _result(cpu: str, ratio: float, ms: float) -> dict:
    rows = [
        {"bench": "data", "name": "total", "value": ms, "unit": "ms/sample", "ratio": ratio, "reference": "r"},
        {"bench": "train", "name": "32-true: data wait", "value": 0.1, "unit": "fraction", "ratio": None},
    ]
    return {"facts": {"cpu": cpu, "cores": 2, "gpu": None}, "rows": rows}


def test_compare_fails_on_a_ratio_that_fell_by_more_than_the_threshold():
    old = _result("A", ratio=8.0, ms=10.0)
    assert not any(c.regression for c in compare(old, _result("B", ratio=7.5, ms=30.0)))  # -6%; other machine
    changes = compare(old, _result("B", ratio=6.8, ms=5.0))  # -15%
    assert [(c.key, c.kind, c.regression) for c in changes] == [
        ("data/total", "ratio", True),
        ("train/32-true: data wait", "info", False),
    ]
    assert not any(c.regression for c in compare(old, _result("B", 6.8, 5.0), threshold=0.2))


def test_compare_judges_absolute_times_on_the_same_machine_only():
    old = _result("A", ratio=8.0, ms=10.0)
    same = {c.kind: c for c in compare(old, _result("A", ratio=8.0, ms=12.0))}
    assert same["absolute"].regression and same["absolute"].change == pytest.approx(10 / 12)
    assert "absolute" not in {c.kind for c in compare(old, _result("B", ratio=8.0, ms=12.0))}


def test_compare_command_exit_status(tmp_path, capsys):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_result("A", 8.0, 10.0)))
    new.write_text(json.dumps(_result("B", 6.0, 10.0)))
    with pytest.raises(SystemExit) as exc:
        main(["bench", "compare", str(old), str(new)])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "different machines" in out and "1 regression(s) beyond 10%" in out
    new.write_text(json.dumps(copy.deepcopy(_result("B", 8.5, 10.0))))
    main(["bench", "compare", str(old), str(new)])
    assert "no regression beyond 10%" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="give OLD.json NEW.json"):
        main(["bench", "compare", str(old)])


def test_the_gpu_command_dry_runs_on_cpu(tmp_path, capsys):
    """Every bench once at toy sizes (about 55 CPU seconds: the ONNX export, four ``evaluate`` processes and
    Lightning's start are most of it)."""
    out = tmp_path / "results"
    main(["bench", "suite", "--device", "cpu", "--quick", "--json", f"{out}/s.json", "--plot", f"{out}/s.png"])
    data = read_result(out / "s.json")
    assert not data["errors"] and set(data["seconds"]) == set(BENCHES)
    assert {r["bench"] for r in data["rows"]} == set(BENCHES)
    assert (out / "s.png").read_bytes()[:8] == PNG
    text = capsys.readouterr().out
    assert "train: Bottleneck: " in text and f"results: {out}/s.json" in text
