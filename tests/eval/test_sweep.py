"""Threshold sweep: saved maps, reuse of post-processing stages, the best value, table and plot."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from ocrdet.data.io.format import AnnotationError, parse_annotations
from ocrdet.data.io.saved_maps import load_maps, save_maps
from ocrdet.eval.evaluate import ground_truth
from ocrdet.eval.iou_hmean import ImageCounts, match_image
from ocrdet.eval.sweep import (
    format_sweep,
    parse_sweep,
    plot_sweep,
    run_sweep,
    sweep,
    sweep_image,
)
from ocrdet.model.postprocess import PostprocessConfig, postprocess


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def scene(seed: int, size: tuple[int, int] = (120, 160)):
    """A map with words of varied strength (all real) and strong false blobs; GT in original pixels (scale 0.5)."""
    rng = np.random.default_rng(seed)
    prob = np.zeros(size, dtype=np.float32)
    words = []
    for row in range(5):
        x0, y0 = rng.uniform(4, 30), 6 + 22 * row
        w, h = rng.uniform(40, 90), 12
        cv2.fillPoly(prob, [np.round(rect(x0 + 3, y0 + 3, x0 + w - 3, y0 + h - 3)).astype(np.int32)], 0.35 + 0.12 * row)
        words.append(rect(x0, y0, x0 + w, y0 + h) * 2)
    for _ in range(2):
        x, y = rng.uniform(130, 150), rng.uniform(5, 100)
        cv2.fillPoly(prob, [np.round(rect(x, y, x + 8, y + 8)).astype(np.int32)], float(rng.uniform(0.5, 0.9)))
    return cv2.GaussianBlur(prob, (3, 3), 0.8), words


SCALE = (0.5, 0.5)


@pytest.fixture()
def saved(tmp_path):
    names, maps, gts = [], [], {}
    for k in range(4):
        prob, words = scene(k)
        names.append(f"img_{k}.jpg")
        maps.append(prob)
        gts[f"img_{k}.jpg"] = words
    gts["no_map.jpg"] = [rect(0, 0, 40, 20)]
    save_maps(tmp_path / "maps.npz", names, maps, [SCALE] * len(maps))
    annotations = {
        "images": {
            name: {"words": {f"{i}": {"points": w.tolist()} for i, w in enumerate(words)}}
            for name, words in gts.items()
        }
    }
    (tmp_path / "gt.json").write_text(json.dumps(annotations))
    return tmp_path


def test_parse_sweep():
    param, values = parse_sweep("box_thresh=0.3:0.9:0.05")
    assert param == "box_thresh" and len(values) == 13 and values[0] == 0.3 and values[-1] == 0.9
    assert parse_sweep("unclip_ratio=1.5:2.0:0.25")[1].tolist() == [1.5, 1.75, 2.0]
    for bad, message in [
        ("box_thresh=0.3:0.9", "PARAM=START:STOP:STEP"),
        ("min_size=1:2:1", "one of"),
        ("thresh=0.5:0.3:0.1", "STOP >= START"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_sweep(bad)


def test_saved_maps_round_trip(tmp_path):
    maps = [np.random.default_rng(0).random((5, 7), dtype=np.float32), np.zeros((3, 2), np.float32)]
    save_maps(tmp_path / "m.npz", ["a.jpg", "b/c.jpg"], maps, [(0.5, 0.25), (1.0, 1.0)])
    loaded = load_maps(tmp_path / "m.npz")
    assert loaded.names == ["a.jpg", "b/c.jpg"]
    assert [m.shape for m in loaded.maps] == [(5, 7), (3, 2)] and loaded.maps[0].dtype == np.float16
    np.testing.assert_allclose(loaded.maps[0], maps[0], atol=1e-3)
    assert loaded.scales.tolist() == [[0.5, 0.25], [1.0, 1.0]]
    with pytest.raises(ValueError, match="not found"):
        load_maps(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved-maps"):
        load_maps(tmp_path / "other.npz")


@pytest.mark.parametrize(
    ("param", "values"),
    [("box_thresh", [0.3, 0.45, 0.6, 0.75]), ("unclip_ratio", [1.2, 1.5, 2.0]), ("thresh", [0.2, 0.3, 0.5])],
)
def test_reused_stages_give_what_postprocess_gives(param, values):
    """Reference: a full ``postprocess`` per value."""
    prob = scene(0)[0].astype(np.float16).astype(np.float32)
    config = PostprocessConfig()
    for dets, v in zip(sweep_image(prob, SCALE, param, values, config), values, strict=True):
        expected = postprocess(prob, replace(config, **{param: v}), SCALE)[0]
        assert len(dets) == len(expected)
        assert all(np.array_equal(a, b) for a, b in zip(dets, expected, strict=True))


def reference_sweep(saved_dir, param, values):
    """Evaluate each value on its own: load, post-process, match image by image."""
    maps = load_maps(saved_dir / "maps.npz")
    gts = ground_truth(parse_annotations(json.loads((saved_dir / "gt.json").read_text())))
    by_name = dict(zip(maps.names, zip(maps.maps, maps.scales, strict=True), strict=True))
    rows = []
    for v in values:
        config = replace(PostprocessConfig(), **{param: v})
        total = ImageCounts()
        for name, (polys, ignore, _) in gts.items():
            dets = []
            if name in by_name:
                prob, scale = by_name[name]
                dets = postprocess(prob.astype(np.float32), config, tuple(scale))[0]
            total = total + match_image(polys, ignore, dets)
        rows.append(total.metrics())
    return rows


def test_sweep_equals_per_value_evaluation_and_finds_the_best(saved):
    param, values = parse_sweep("box_thresh=0.3:0.9:0.1")
    gts = ground_truth(parse_annotations(json.loads((saved / "gt.json").read_text())))
    result = sweep(load_maps(saved / "maps.npz"), gts, param, values)
    expected = reference_sweep(saved, param, values)
    assert result.metrics == expected
    hmeans = [m["hmean"] for m in expected]
    assert result.best == hmeans.index(max(hmeans))
    assert len(set(hmeans)) > 2  # the scene makes the threshold matter
    table = format_sweep(result)
    assert "<- best" in table and f"best box_thresh = {result.values[result.best]:.4g}" in table


def test_sweep_with_workers_and_cleval(saved):
    gts = ground_truth(parse_annotations(json.loads((saved / "gt.json").read_text())))
    maps = load_maps(saved / "maps.npz")
    inline = sweep(maps, gts, "unclip_ratio", [1.3, 1.5, 1.8], metric="cleval")
    pooled = sweep(maps, gts, "unclip_ratio", [1.3, 1.5, 1.8], metric="cleval", workers=2)
    assert pooled.values == inline.values and pooled.best == inline.best
    for a, b in zip(pooled.metrics, inline.metrics, strict=True):
        assert a == pytest.approx(b, abs=1e-12)  # per-image score sums are added in another grouping
    assert {"mean_hmean", "char_gt"} <= set(inline.metrics[0])


def test_run_sweep_writes_the_plot(saved):
    result = run_sweep(saved / "gt.json", saved / "maps.npz", "thresh=0.2:0.4:0.1", saved / "plot" / "sweep.png")
    assert result.param == "thresh" and len(result.values) == 3
    assert (saved / "plot" / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_sweep(result, saved / "again.png")
    assert (saved / "again.png").stat().st_size > 1000


def test_maps_of_unknown_images_are_an_error(saved):
    gts = ground_truth(parse_annotations({"images": {"other.jpg": {"words": {}}}}))
    with pytest.raises(AnnotationError, match="img_0.jpg"):
        sweep(load_maps(saved / "maps.npz"), gts, "box_thresh", [0.5])
