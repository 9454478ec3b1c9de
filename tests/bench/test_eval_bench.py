"""``ocrdet bench eval``: whole-process rows against the official IoU algorithm (Polygon3) and PyPI cleval, with
equal figures, a table, a plot and JSON."""

from __future__ import annotations

import json

import numpy as np

from ocrdet.bench.eval_bench import bench_eval, bench_json, format_bench
from ocrdet.cli import main


def test_bench_eval_compares_with_both_references(tmp_path, capsys):
    rng = np.random.default_rng(3)
    images = {}
    for k in range(4):
        words = {}
        for w in range(6):
            x, y = int(rng.integers(0, 300)), int(rng.integers(0, 300))
            words[f"{w}"] = {"points": [[x, y], [x + 60, y], [x + 60, y + 15], [x, y + 15]], "transcription": "TOTAL"}
        images[f"{k}.jpg"] = {"words": words}
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images}))
    result = bench_eval(gt, repeats=1)
    table = format_bench(result)
    assert "IoU: official algorithm (Polygon3) vs ocrdet, whole process" in table
    assert "IoU: official algorithm (Polygon3) vs ocrdet: same P/R/H" in result.notes
    assert "CLEval: PyPI cleval vs ocrdet: same P/R/H" in result.notes
    assert all(row.ours_ms > 0 for row in result.rows)
    assert json.loads(json.dumps(bench_json(result)))["rows"][0]["speedup"] > 0
    main(["bench", "eval", "--data", str(gt), "--plot", str(tmp_path / "b.png"), "--json", str(tmp_path / "b.json")])
    assert (tmp_path / "b.png").stat().st_size > 0
    assert json.loads((tmp_path / "b.json").read_text())["bench"] == "eval"
    assert "speedup" in capsys.readouterr().out
