"""H-mean by text height: recall by ground-truth height, precision by detection height, the metric's own pairs."""

from __future__ import annotations

import numpy as np
import pytest

from ocrdet.cli import main
from ocrdet.data.io.format import Annotations
from ocrdet.data.io.predictions import write_predictions
from ocrdet.eval.by_height import by_height, format_by_height, heights


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def annotations(size: tuple[int, int] | None = (1000, 2000)) -> Annotations:
    """Lines 5, 5 and 20 px tall in a 1000 x 2000 image; a 40 px line is don't care."""
    words = {
        "a": {"points": box(0, 0, 200, 5)},
        "b": {"points": box(0, 100, 200, 105)},
        "c": {"points": box(0, 200, 200, 220)},
        "d": {"points": box(0, 300, 200, 340), "illegibility": True},
    }
    sized = {"img_w": size[0], "img_h": size[1]} if size else {}
    return Annotations.model_validate({"images": {"x.jpg": {"words": words, **sized}}})


def test_heights_are_short_sides():
    assert heights([np.array(box(0, 0, 200, 5), np.float32)]).tolist() == [5.0]


def test_small_lines_missed_tall_line_found():
    found = {"x.jpg": [np.array(box(0, 200, 200, 220), np.float32), np.array(box(500, 0, 700, 6), np.float32)]}
    small, tall = by_height(annotations(), found, [10])
    assert (small.gt, small.gt_matched, small.det, small.det_matched) == (2, 0, 1, 0)  # the 6 px false positive
    assert (tall.gt, tall.gt_matched, tall.det, tall.det_matched) == (1, 1, 1, 1)  # the don't care is left out
    assert small.recall == 0 and tall.hmean == 1.0 and (small.low, small.high, tall.high) == (0.0, 10.0, np.inf)
    assert format_by_height([small, tall]).splitlines()[1].startswith("0-10")


def test_heights_at_the_models_size():
    """At long side 500 the image is 4x smaller: the 20 px line is 5 px tall, in the first bucket."""
    small, tall = by_height(annotations(), {}, [6], long_side=500)
    assert (small.gt, tall.gt) == (3, 0)
    with pytest.raises(ValueError, match="x.jpg: no img_w/img_h"):
        by_height(annotations(size=None), {}, [6], long_side=500)


def test_evaluate_by_height_command(tmp_path, capsys):
    gt = tmp_path / "gt.json"
    gt.write_text(annotations().model_dump_json())
    preds = tmp_path / "p.csv"
    write_predictions({"x.jpg": [np.array(box(0, 200, 200, 220), np.float32)]}, preds)
    main(["evaluate", str(gt), str(preds), "--by-height", "8", "16", "--height-side", "2000"])
    table = capsys.readouterr().out.split("height px")[1].splitlines()
    assert [row.split()[0] for row in table[1:]] == ["0-8", "8-16", ">=16"]
    assert table[3].split()[1:3] == ["1", "1.000"]
