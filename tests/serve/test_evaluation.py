"""The viewer's evaluation: ``match_pairs`` agrees with ``match_image``; figures worst first; checkpoint runs."""

from __future__ import annotations

import numpy as np
import pytest

from ocrdet.bench.eval_bench import perturb
from ocrdet.data.io.format import Annotations, ImageAnnotation, Word, load_annotations, split_paths
from ocrdet.eval.iou_hmean import match_image, match_pairs
from ocrdet.infer import Detector
from ocrdet.serve.evaluation import evaluate, predict_split


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def test_match_pairs_by_hand():
    gts = [rect(0, 0, 10, 10), rect(20, 0, 30, 10), rect(40, 0, 50, 10)]
    ignore = np.array([False, False, True])
    dets = [rect(21, 0, 31, 10), rect(100, 0, 110, 10), rect(40, 0, 50, 10), rect(0, 0, 10, 10)]
    match = match_pairs(gts, ignore, dets)
    assert sorted(zip(match.gt.tolist(), match.det.tolist(), strict=True)) == [(0, 3), (1, 0)]
    assert match.det_dont_care.tolist() == [False, False, True, False]


@pytest.mark.parametrize("seed", range(8))
def test_match_pairs_agrees_with_match_image(synth_root, seed):
    rng = np.random.default_rng(seed)
    for image in load_annotations(split_paths(synth_root, "val")[1]).images.values():
        polys, ignore = image.polygons()
        ignore = ignore | (rng.random(len(ignore)) < 0.1)
        dets = perturb(polys, rng)
        counts, match = match_image(polys, ignore, dets), match_pairs(polys, ignore, dets)
        assert len(match.gt) == len(match.det) == counts.matched
        assert len(set(match.gt.tolist())) == len(match.gt) and len(set(match.det.tolist())) == len(match.det)
        assert not ignore[match.gt].any() and not match.det_dont_care[match.det].any()
        assert int((~match.det_dont_care).sum()) == counts.det_care


def test_evaluate_sorts_worst_first_and_names_unknown_images():
    square = [(0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)]
    gt = Annotations(images={n: ImageAnnotation(words={"1": Word(points=square)}) for n in ("a.jpg", "b.jpg")})
    result = evaluate(gt, {"a.jpg": [np.array(square)]}, "preds.csv")
    assert [name for name, _ in result.per_image] == ["b.jpg", "a.jpg"]
    assert result.summary["matched"] == 1 and result.states("a.jpg") == (["matched"], ["matched"])
    assert result.states("b.jpg") == (["missed"], [])
    with pytest.raises(
        ValueError, match=r"preds.csv: predictions for images that are not in the ground truth: 'c\.jpg'"
    ):
        evaluate(gt, {"c.jpg": []}, "preds.csv")


def test_predict_split_skips_what_cannot_be_decoded(synth_root, checkpoint, tmp_path):
    image_dir = split_paths(synth_root, "val")[0]
    predictions = predict_split(Detector.from_checkpoint(checkpoint), image_dir, ["val_00000.jpg", "gone.jpg"])
    assert list(predictions) == ["val_00000.jpg"] and len(predictions["val_00000.jpg"]) >= 1
