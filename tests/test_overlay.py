"""Overlays a person can read: full resolution (or ``--overlay-scale``), and ``evaluate --overlay`` drawing ground
truth and detections by match state in the web page's colours."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import ocrdet.serve
from ocrdet.cli import main
from ocrdet.data.io.predictions import write_predictions
from ocrdet.eval.evaluate import match_states
from ocrdet.overlay import DET_COLORS, GT_COLORS, PREDICTION_COLOR, rgb


def css_colors() -> dict[str, str]:
    """Selector -> stroke colour of the web page's polygons."""
    css = (Path(ocrdet.serve.__file__).parent / "static" / "style.css").read_text()
    rules = re.findall(r"^([^{}\n]+)\{[^}]*stroke: (#[0-9a-f]{6})", css, flags=re.M)
    return {sel.strip(): color for selectors, color in rules for sel in selectors.split(",")}


def test_colours_are_the_web_pages():
    css = css_colors()
    assert GT_COLORS == {"matched": css[".gt.matched"], "missed": css[".missed"], "ignore": css[".ignore"]}
    det = {"matched": css[".det.matched"], "false_positive": css[".false_positive"], "ignore": css[".ignore"]}
    assert DET_COLORS == det
    assert PREDICTION_COLOR == css[".detected"]


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def test_match_states_are_the_metrics_pairs():
    gt = [box(10, 10, 100, 30), box(10, 50, 100, 70), box(10, 90, 100, 110)]
    det = [box(12, 10, 100, 31), box(200, 200, 260, 220), box(10, 90, 100, 110)]
    gt_states, det_states = match_states(gt, np.array([False, False, True]), det)
    assert gt_states == ["matched", "missed", "ignore"]
    assert det_states == ["matched", "false_positive", "ignore"]


@pytest.fixture()
def split(tmp_path: Path) -> Path:
    """ROOT with images/val/page.png (1200 x 900, larger than any model size) and jsons/val.json: three lines,
    the third don't care."""
    (tmp_path / "images" / "val").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "val" / "page.png"), np.full((1200, 900, 3), 255, np.uint8))
    words = {
        "a": {"points": box(100, 100, 700, 160).tolist()},
        "b": {"points": box(100, 300, 700, 360).tolist()},
        "c": {"points": box(100, 500, 700, 560).tolist(), "illegibility": True},
    }
    (tmp_path / "jsons").mkdir()
    (tmp_path / "jsons" / "val.json").write_text(json.dumps({"images": {"page.png": {"words": words}}}))
    return tmp_path


def test_evaluate_overlay_draws_four_states_at_full_resolution(split, tmp_path, capsys):
    preds = tmp_path / "preds.csv"
    write_predictions({"page.png": [box(100, 100, 700, 160), box(100, 800, 500, 850)]}, preds)
    out = tmp_path / "overlays"
    main(["evaluate", str(split / "jsons" / "val.json"), str(preds), "--overlay", str(out)])
    assert "1 overlays in" in capsys.readouterr().out
    image = cv2.cvtColor(cv2.imread(str(out / "page.png")), cv2.COLOR_BGR2RGB)
    assert image.shape == (1200, 900, 3)
    colours = {tuple(c) for c in image.reshape(-1, 3).tolist()}
    for state, colour in (("matched", GT_COLORS), ("missed", GT_COLORS), ("ignore", GT_COLORS)):
        assert rgb(colour[state]) in colours, state
    assert rgb(DET_COLORS["false_positive"]) in colours and rgb(DET_COLORS["matched"]) in colours
    assert tuple(image[330, 100]) == rgb(GT_COLORS["missed"])  # left edge of the missed line, where it is drawn


def test_evaluate_overlay_scale_and_images_folder(split, tmp_path):
    preds = tmp_path / "preds.csv"
    write_predictions({"page.png": []}, preds)
    gt = tmp_path / "gt.json"  # not beside its images: --images says where they are
    gt.write_text((split / "jsons" / "val.json").read_text())
    out = tmp_path / "small"
    argv = ["evaluate", str(gt), str(preds), "--overlay", str(out), "--overlay-scale", "0.5"]
    with pytest.raises(SystemExit, match="no image folder"):
        main(argv)
    main([*argv, "--images", str(split / "images" / "val")])
    assert cv2.imread(str(out / "page.png")).shape == (600, 450, 3)


def test_predict_overlays_are_full_resolution(tiny_checkpoint, split, tmp_path):
    out = tmp_path / "o"
    images = split / "images" / "val"
    main(["predict", str(tiny_checkpoint), str(images), "--out", str(tmp_path / "p.csv"), "--overlay", str(out)])
    assert cv2.imread(str(out / "page.png")).shape == (1200, 900, 3)  # the model ran at 128 px
    scaled = ["--overlay", str(tmp_path / "s"), "--overlay-scale", "0.25"]
    main(["predict", str(tiny_checkpoint), str(images), "--out", str(tmp_path / "p.csv"), *scaled])
    assert cv2.imread(str(tmp_path / "s" / "page.png")).shape == (300, 225, 3)
