"""What the app serves from: one data split, a run, a prediction file, a detector; slow parts computed once."""

from __future__ import annotations

import base64
import re
import threading
from pathlib import Path

from ocrdet.data.io.decode import ImageDecodeError, decode_bytes
from ocrdet.data.io.format import split_paths
from ocrdet.data.io.predictions import Predictions, format_csv, read_predictions, to_annotations
from ocrdet.infer import Detector
from ocrdet.serve.evaluation import Evaluation, evaluate, predict_split
from ocrdet.serve.problems import SplitReport, check_split
from ocrdet.serve.views import VIEW_LONG_SIDE, ImageView, load_view, view_of


class NotAvailable(LookupError):
    """Asked for something the app was not started with, or an unknown image; the message says which."""


class Workspace:
    """Every page's source. ``data`` + ``split`` feed the data browser and the evaluation's ground truth;
    ``predictions`` and ``detector`` are the two sources of detections; ``run`` feeds the run page."""

    def __init__(
        self,
        data: Path | None,
        split: str,
        run: Path | None = None,
        predictions: Path | None = None,
        detector: Detector | None = None,
    ) -> None:
        self.data, self.split, self.run = data, split, run
        self.predictions_path = predictions
        self.predictions: Predictions | None = read_predictions(predictions) if predictions else None
        self.detector = detector
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        """Held while the model runs and while an evaluation is computed (requests run in threads)."""
        self._report: SplitReport | None = None
        self._evaluations: dict[str, Evaluation] = {}

    def report(self) -> SplitReport:
        """The loaded split and its problems (checked once)."""
        if self.data is None:
            raise NotAvailable("no data set: start `ocrdet serve` with --data ROOT (or a --run that names one)")
        with self._lock:
            if self._report is None:
                self._report = check_split(self.data, self.split)
            return self._report

    def image_path(self, name: str) -> Path:
        """The file of an image listed in the annotations or found on disk; anything else is NotAvailable."""
        report = self.report()
        if name not in report.annotations.images and name not in report.on_disk:
            raise NotAvailable(f"no image {name!r} in split {self.split!r}")
        return split_paths(self.data, self.split)[0] / name

    def view(self, name: str) -> ImageView:
        return load_view(self.image_path(name))

    def sources(self) -> list[str]:
        """Detection sources available for evaluation: ``predictions`` and/or ``checkpoint``."""
        return [s for s, v in (("predictions", self.predictions), ("checkpoint", self.detector)) if v is not None]

    def evaluation(self, source: str) -> Evaluation:
        """The split evaluated against ``source`` (the checkpoint runs over the split once, on first use)."""
        if source not in self.sources():
            raise NotAvailable(f"no {source!r} to evaluate: start with --pred FILE, --checkpoint or --run")
        report = self.report()
        with self._model_lock:
            if source not in self._evaluations:
                if source == "predictions":
                    predictions, label = self.predictions, str(self.predictions_path)
                else:
                    image_dir = split_paths(self.data, self.split)[0]
                    names = list(report.annotations.images)
                    predictions, label = predict_split(self.detector, image_dir, names), "model"
                self._evaluations[source] = evaluate(report.annotations, predictions, label)
            return self._evaluations[source]

    def detect(self, data: bytes, name: str) -> dict:
        """Run the detector on image bytes: the upright image (data URL), polygons in it for drawing, scores,
        and the predictions (stored frame) as CSV and JSON text. Bad bytes: ``ImageDecodeError`` naming ``name``."""
        if self.detector is None:
            raise NotAvailable("no model: start `ocrdet serve` with --checkpoint CKPT or --run RUN_DIR")
        try:
            decoded = decode_bytes(data, min_long_side=max(VIEW_LONG_SIDE, self.detector.eval_size))
        except ImageDecodeError as exc:
            reason = re.sub(r" <_io\.BytesIO object at \w+>", "", str(exc))  # Pillow names its buffer object
            raise ImageDecodeError(f"{name}: not an image that can be read ({reason})") from None
        with self._model_lock:
            detection = self.detector.detect_decoded(decoded)
        view = view_of(decoded)
        predictions = {name: detection.polygons}
        return {
            "name": name,
            "image": "data:image/jpeg;base64," + base64.b64encode(view.jpeg).decode(),
            **view.meta(),
            "polygons": view.points(detection.polygons),
            "scores": [round(float(s), 4) for s in detection.scores],
            "csv": format_csv(predictions),
            "json": to_annotations(predictions).model_dump_json(exclude_none=True, indent=1),
        }
