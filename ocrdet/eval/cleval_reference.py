"""PyPI ``cleval`` 0.1.1 (clovaai's CLEval) run image by image: the oracle that ``ocrdet.eval.cleval`` must equal.

Needs the dev extras (``cleval``, which pulls Polygon3). Images of 4-point polygons go through its public
metric, ``CLEvalMetric`` (QUAD boxes); images of other polygons through ``eval_functions.evaluation`` with
its POLY boxes, two crashes of 0.1.1 patched (POLY has no ``scale`` attribute, and its
``pseudo_character_center`` takes no threshold argument). Mixed images cannot be evaluated by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ocrdet.eval.cleval import CLEvalConfig, CLEvalCounts


def _letters(quad: bool, points: list[float], text: str | None, dont_care: bool) -> str:
    """What to hand CLEval as a word's letters: its text; without one, CLEval's own pseudo transcription
    (the one it gives don't-care words), the rule ocrdet applies to words without a transcription."""
    from cleval.box_types import QUAD

    if text and not dont_care:
        return text
    if quad:
        return QUAD(points, transcription="", is_dc=True).transcription
    return "#" * 10


def _poly_class():
    from cleval.box_types import POLY

    class PatchedPoly(POLY):
        scale = None

        def pseudo_character_center(self, *_args):
            return POLY.pseudo_character_center(self)

    return PatchedPoly


def _update_quads(metric, gts: list[np.ndarray], ignore: list[bool], dets: list[np.ndarray], letters: list[str]):
    """One image of 4-point polygons into PyPI's ``CLEvalMetric`` (its QUAD boxes; detections carry no letters)."""
    metric.update(
        np.array([d.reshape(-1) for d in dets]).reshape(-1, 8),
        np.array([g.reshape(-1) for g in gts]).reshape(-1, 8),
        det_letters=[""] * len(dets),
        gt_letters=letters,
        gt_is_dcs=ignore,
    )


def _summed_states(metric) -> tuple[int, int, int, float, float]:
    """PyPI metric's summed states: characters of GT and detections, true positives, split and merge penalties."""
    return (
        int(metric.det_num_char_gt),
        int(metric.det_num_char_det),
        int(metric.det_num_char_tp_recall),
        float(metric.det_gran_score_recall),
        float(metric.det_gran_score_precision),
    )


def reference_cleval_image(
    gt_polys: Sequence[np.ndarray],
    gt_ignore: np.ndarray,
    det_polys: Sequence[np.ndarray],
    gt_texts: Sequence[str | None] | None = None,
    config: CLEvalConfig = CLEvalConfig(),
) -> CLEvalCounts:
    """One image's ``CLEvalCounts`` as PyPI cleval computes them (its float64 per-image figures)."""
    gts = [np.asarray(p, dtype=np.float64) for p in gt_polys]
    dets = [np.asarray(p, dtype=np.float64) for p in det_polys]
    quad = {len(p) == 4 for p in gts + dets}
    if len(quad) > 1:
        raise ValueError("PyPI cleval cannot mix 4-point and other polygons in one image")
    is_quad = quad != {False}
    ignore = [bool(i) for i in np.asarray(gt_ignore, dtype=bool)]
    texts = [None] * len(gts) if gt_texts is None else list(gt_texts)
    letters = [_letters(is_quad, g.reshape(-1).tolist(), t, i) for g, t, i in zip(gts, texts, ignore, strict=True)]
    if is_quad:
        from cleval import CLEvalMetric

        metric = CLEvalMetric(
            recall_gran_penalty=config.recall_granularity_penalty,
            precision_gran_penalty=config.precision_granularity_penalty,
            vertical_aspect_ratio_thresh=config.vertical_aspect_ratio_threshold,
            ap_constraint=config.area_precision_threshold,
        )
        _update_quads(metric, gts, ignore, dets, letters)
        char_gt, char_det, tp, split, merge = _summed_states(metric)
    else:
        from cleval.eval_functions import evaluation
        from cleval.torchmetric import Options

        poly = _poly_class()
        options = Options(
            True,
            config.recall_granularity_penalty,
            config.precision_granularity_penalty,
            config.vertical_aspect_ratio_threshold,
            config.area_precision_threshold,
        )
        options.E2E = False
        gt_boxes = [
            poly(g.reshape(-1).tolist(), transcription=t, is_dc=i) for g, t, i in zip(gts, letters, ignore, strict=True)
        ]
        det_boxes = [poly(d.reshape(-1).tolist(), transcription="") for d in dets]
        stats = evaluation(options, gt_boxes, det_boxes).stats.det
        char_gt, char_det, tp = stats.num_char_gt, stats.num_char_det, stats.num_char_tp_recall
        split, merge = stats.gran_score_recall, stats.gran_score_precision
    # CLEval's extract_stats, in float64 (the metric's own compute() works in float32 tensors)
    recall = 0.0 if char_gt == 0 else max(0.0, tp - split) / char_gt
    precision = 0.0 if char_det == 0 else max(0.0, tp - merge) / char_det
    hmean = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return CLEvalCounts(char_gt, char_det, tp, split, merge, 1, recall, precision, hmean)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """``python -m ocrdet.eval.cleval_reference GT.json PRED.csv``: PyPI cleval's ``CLEvalMetric`` over every
    image as a whole process (the baseline of ``ocrdet bench eval --metric cleval``); prints the data-set
    figures (float64, from its summed states) as JSON. 4-point polygons only (its metric's QUAD boxes)."""
    import json
    import sys

    from cleval import CLEvalMetric

    from ocrdet.eval.iou_hmean_reference import _read_inputs

    gt_path, pred_path = (argv if argv is not None else sys.argv[1:])[:2]
    with open(gt_path, encoding="utf-8-sig") as f:
        images = json.load(f)["images"]
    metric = CLEvalMetric()
    for (gts, ignore, dets), image in zip(_read_inputs(gt_path, pred_path), images.values(), strict=True):
        texts = [w.get("transcription") for w in image.get("words", {}).values()]
        letters = [_letters(True, g.reshape(-1).tolist(), t, i) for g, t, i in zip(gts, texts, ignore, strict=True)]
        _update_quads(metric, gts, ignore, dets, letters)
    counts = CLEvalCounts(*_summed_states(metric))
    figures = counts.totals()
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
