"""File-level evaluation and the background evaluator of validation."""

from __future__ import annotations

import json
import math
import signal

import cv2
import numpy as np
import pytest

import ocrdet.eval.evaluate as evaluate_module
from ocrdet.data.io.format import AnnotationError
from ocrdet.data.io.predictions import write_predictions
from ocrdet.eval.cleval import CLEvalCounts, cleval_image
from ocrdet.eval.evaluate import BackgroundEvaluator, evaluate_files, format_table, process_pool
from ocrdet.eval.iou_hmean import ImageCounts, match_image, match_images
from ocrdet.model.postprocess import PostprocessConfig, postprocess


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def write_gt(path, images: dict[str, list[tuple[np.ndarray, bool]]]) -> None:
    data = {
        "images": {
            name: {
                "words": {
                    f"{i:04d}": {"points": poly.tolist(), "illegibility": ignore, "transcription": "WORD"}
                    for i, (poly, ignore) in enumerate(words)
                }
            }
            for name, words in images.items()
        }
    }
    path.write_text(json.dumps(data))


GT = {
    "a.jpg": [(rect(0, 0, 40, 10), False), (rect(0, 20, 40, 30), False), (rect(60, 0, 90, 10), True)],
    "b.jpg": [(rect(10, 10, 50, 20), False)],
    "c.jpg": [(rect(0, 0, 30, 10), False)],
}
PRED = {
    "a.jpg": [rect(0, 0, 40, 10), rect(61, 0, 90, 10), rect(100, 100, 120, 110)],  # hit, don't care, false
    "b.jpg": [rect(10, 10, 50, 20)],  # hit
}  # c.jpg: no predictions at all


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_evaluate_files_by_hand(tmp_path, suffix):
    write_gt(tmp_path / "gt.json", GT)
    write_predictions(PRED, tmp_path / f"pred{suffix}")
    result = evaluate_files(tmp_path / "gt.json", tmp_path / f"pred{suffix}")
    assert result.metric == "hmean"
    s = result.summary
    assert (s["gt_care"], s["det_care"], s["matched"]) == (4, 3, 2)
    assert (s["precision"], s["recall"]) == (2 / 3, 0.5)
    assert s["hmean"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    per_image = dict(result.per_image)
    assert list(per_image) == ["a.jpg", "b.jpg", "c.jpg"]
    assert per_image["a.jpg"]["recall"] == 0.5 and per_image["a.jpg"]["precision"] == 0.5
    assert per_image["b.jpg"]["hmean"] == 1.0
    assert per_image["c.jpg"]["recall"] == 0.0  # missing from the predictions = no detections
    table = format_table(result)
    assert "data set" in table and "0.6667" in table and "c.jpg" in table


def test_cleval_from_files(tmp_path):
    write_gt(tmp_path / "gt.json", GT)
    write_predictions(PRED, tmp_path / "pred.csv")
    result = evaluate_files(tmp_path / "gt.json", tmp_path / "pred.csv", metric="cleval")
    assert {"mean_precision", "mean_recall", "mean_hmean", "char_gt"} <= set(result.summary)
    assert dict(result.per_image)["b.jpg"]["hmean"] == 1.0
    assert result.summary["mean_recall"] == pytest.approx(np.mean([f["recall"] for _, f in result.per_image]))
    assert "mean over images" in format_table(result)


def test_predictions_for_unknown_images_are_an_error(tmp_path):
    write_gt(tmp_path / "gt.json", GT)
    write_predictions({"zzz.jpg": [rect(0, 0, 5, 5)]}, tmp_path / "pred.csv")
    with pytest.raises(AnnotationError, match=r"pred\.csv.*'zzz\.jpg'"):
        evaluate_files(tmp_path / "gt.json", tmp_path / "pred.csv")


def test_unknown_metric(tmp_path):
    with pytest.raises(ValueError, match="unknown metric 'map'"):
        evaluate_files(tmp_path / "gt.json", tmp_path / "pred.csv", metric="map")


def test_icdar2015_files_inline_and_with_workers(tmp_path, icdar_gt_path, icdar_images, icdar_detections):
    write_predictions(
        {name: dets for (name, _, _, _), dets in zip(icdar_images, icdar_detections, strict=True)},
        tmp_path / "pred.csv",
    )
    inline = evaluate_files(icdar_gt_path, tmp_path / "pred.csv")
    pooled = evaluate_files(icdar_gt_path, tmp_path / "pred.csv", workers=2)
    assert pooled == inline
    rounded = [[np.round(d) for d in dets] for dets in icdar_detections]  # the CSV stores integers
    images = [(polys, ignore, dets) for (_, polys, ignore, _), dets in zip(icdar_images, rounded, strict=True)]
    expected = sum(match_images(images), ImageCounts())
    assert inline.summary == expected.metrics()


# --- background evaluator ---------------------------------------------------------------------------------


def shrink_distance(w: float, h: float, ratio: float) -> float:
    """d such that unclipping the w x h rectangle shrunk by d restores it (see tests/model/test_postprocess.py)."""
    a, b, c = 8 + 4 * ratio, -2 * (1 + ratio) * (w + h), ratio * w * h
    return (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a)


def batch(seed: int, n: int = 3, size: int = 128):
    """n maps (float16) with drawn words, their GT (in map pixels, some words missed, one don't care)."""
    rng = np.random.default_rng(seed)
    maps = np.zeros((n, size, size), dtype=np.float32)
    polys, ignores = [], []
    for k in range(n):
        words = []
        for row in range(4):
            x0, y0 = rng.uniform(5, 40), 10 + 28 * row
            w, h = rng.uniform(40, 80), rng.uniform(12, 18)
            words.append(rect(x0, y0, x0 + w, y0 + h))
            if rng.random() < 0.8:
                d = shrink_distance(w, h, 1.5)
                kernel = np.round(rect(x0 + d, y0 + d, x0 + w - d, y0 + h - d)).astype(np.int32)
                cv2.fillPoly(maps[k], [kernel], float(rng.uniform(0.65, 0.95)))
        polys.append(words)
        ignores.append(np.array([False, False, False, k == 0]))
    return maps.astype(np.float16), polys, ignores


def expected_counts(batches, config=PostprocessConfig(), scale=(1.0, 1.0)):
    """Reference: post-process and match one image at a time, in this process."""
    counts = []
    for maps, polys, ignores in batches:
        for prob, gt, ignore in zip(maps, polys, ignores, strict=True):
            counts.append(match_image(gt, ignore, postprocess(prob, config, scale)[0]))
    return counts


def test_background_evaluator_inline_computes_once(monkeypatch):
    calls = []
    original = evaluate_module.score_images

    def counting(metric, gts, dets):
        calls.append(len(gts))
        return original(metric, gts, dets)

    monkeypatch.setattr(evaluate_module, "score_images", counting)
    batches = [batch(0), batch(1)]
    evaluator = BackgroundEvaluator(PostprocessConfig(), workers=0)
    for maps, polys, ignores in batches:
        evaluator.submit(maps, polys, ignores)
    expected = expected_counts(batches)
    first = evaluator.compute()
    assert evaluator.compute() is first and evaluator.counts() == sum(expected, ImageCounts())
    assert calls == [3, 3]  # one scoring per batch, none at compute
    assert first == sum(expected, ImageCounts()).metrics()
    assert 0 < first["hmean"] < 1
    assert evaluator.per_image() == expected
    with pytest.raises(RuntimeError, match="reset"):
        evaluator.submit(*batches[0])
    evaluator.reset()
    assert evaluator.counts() == ImageCounts()


def test_background_evaluator_workers_match_inline():
    batches = [batch(seed) for seed in range(5)]
    evaluator = BackgroundEvaluator(PostprocessConfig(), workers=1)
    try:
        for maps, polys, ignores in batches:
            evaluator.submit(maps, polys, ignores)
        assert evaluator.per_image() == expected_counts(batches)  # submission order kept
        assert evaluator.compute() == sum(expected_counts(batches), ImageCounts()).metrics()
        evaluator.reset()
        evaluator.submit(*batches[0])
        assert evaluator.counts() == sum(expected_counts(batches[:1]), ImageCounts())
    finally:
        evaluator.close()


def test_pool_workers_ignore_ctrl_c():
    """A terminal's Ctrl-C reaches the evaluator's workers too; only the main process may act on it."""
    with process_pool(1) as pool:
        assert pool.submit(signal.getsignal, signal.SIGINT).result() == signal.SIG_IGN


def test_background_evaluator_scales_and_cleval():
    maps, polys, ignores = batch(3)
    scale = (0.5, 0.25)
    original_px = [[p / np.array(scale) for p in words] for words in polys]
    texts = [["AB", "CDEF", None, None] for _ in polys]
    evaluator = BackgroundEvaluator(PostprocessConfig(), workers=0, metric="cleval")
    evaluator.submit(maps, original_px, ignores, scales=[scale] * len(maps), gt_texts=texts)
    expected = [
        cleval_image(gt, ignore, postprocess(prob, PostprocessConfig(), scale)[0], text)
        for prob, gt, ignore, text in zip(maps, original_px, ignores, texts, strict=True)
    ]
    assert evaluator.counts() == sum(expected, CLEvalCounts())
    assert evaluator.compute()["images"] == len(maps)


def test_background_evaluator_refuses_bad_batches():
    evaluator = BackgroundEvaluator(workers=0)
    maps, polys, ignores = batch(0)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        evaluator.submit(maps[0], polys, ignores)
    with pytest.raises(ValueError, match="3 maps but 2 polygon lists"):
        evaluator.submit(maps, polys[:2], ignores)
    with pytest.raises(ValueError, match="unknown metric"):
        BackgroundEvaluator(workers=0, metric="iou")
