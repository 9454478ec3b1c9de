"""Per-image evaluation for the viewer: figures worst first, and which polygon matched, was missed or was false."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocrdet.data.io.decode import ImageDecodeError
from ocrdet.data.io.format import Annotations
from ocrdet.data.io.predictions import Predictions
from ocrdet.eval.evaluate import align_predictions, ground_truth, image_figures, match_states, score_images, total
from ocrdet.infer import Detector


@dataclass(frozen=True)
class Evaluation:
    summary: dict[str, float]
    """Data-set precision, recall, hmean and counts (ICDAR 2015 IoU rules)."""
    per_image: list[tuple[str, dict[str, float]]]
    """(file name, figures), worst H-mean first."""
    annotations: Annotations
    predictions: Predictions

    def states(self, name: str) -> tuple[list[str], list[str]]:
        """One image's ground-truth states (``matched`` / ``missed`` / ``ignore``) and detection states
        (``matched`` / ``false_positive`` / ``ignore``), in polygon order."""
        polys, ignore = self.annotations.images[name].polygons()
        return match_states(polys, ignore, self.predictions.get(name, []))


def evaluate(annotations: Annotations, predictions: Predictions, source: str) -> Evaluation:
    """Score ``predictions`` against ``annotations``; names unknown to the ground truth are an
    ``AnnotationError`` naming ``source``."""
    gts = ground_truth(annotations)
    dets = align_predictions(gts, predictions, source)
    counts = score_images("hmean", list(gts.values()), dets)
    per_image = [(name, image_figures(c)) for name, c in zip(gts, counts, strict=True)]
    per_image.sort(key=lambda item: (item[1]["hmean"], item[0]))
    return Evaluation(total(counts, "hmean").metrics(), per_image, annotations, predictions)


def predict_split(detector: Detector, image_dir: Path, names: list[str]) -> Predictions:
    """The detector's polygons (stored frame) for each image of ``names`` that decodes; the others
    (reported on the data page) get none."""
    predictions: Predictions = {}
    for name in names:
        try:
            predictions[name] = detector.detect(image_dir / name).polygons
        except ImageDecodeError:
            continue
    return predictions
