"""Detections on disk: the competition CSV and the JSON annotation format.

CSV: a header ``filename,polygons``, then one row per image; a polygon's integer
coordinates are space-separated (``x1 y1 x2 y2 ...``) and polygons are joined by ``|``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ocrdet.atomic import atomic_write_text
from ocrdet.data.io.format import AnnotationError, Annotations, ImageAnnotation, Word, load_annotations

Predictions = dict[str, list[np.ndarray]]
"""File name -> polygons, each a float (N, 2) array in original image pixels."""


def to_annotations(predictions: Predictions) -> Annotations:
    return Annotations(
        images={
            name: ImageAnnotation(
                words={f"{i:04d}": Word(points=[(float(x), float(y)) for x, y in p]) for i, p in enumerate(polys)}
            )
            for name, polys in predictions.items()
        }
    )


def from_annotations(annotations: Annotations) -> Predictions:
    return {name: image.polygons()[0] for name, image in annotations.images.items()}


def format_csv(predictions: Predictions) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["filename", "polygons"])
    for name, polys in predictions.items():
        cells = ["|".join(" ".join(str(int(round(v))) for v in np.asarray(p).reshape(-1)) for p in polys)]
        writer.writerow([name, *cells])
    return out.getvalue()


def parse_csv(text: str, source: str = "<memory>") -> Predictions:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip() for c in rows[0]] != ["filename", "polygons"]:
        raise AnnotationError(f"{source}: expected a 'filename,polygons' header")
    predictions: Predictions = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise AnnotationError(f"{source}, line {line_no}: expected 2 columns, got {len(row)}")
        name, cell = row
        polys = []
        for k, chunk in enumerate(filter(None, (c.strip() for c in cell.split("|")))):
            try:
                values = [float(v) for v in chunk.split()]
            except ValueError:
                raise AnnotationError(f"{source}, line {line_no} ({name}), polygon {k}: not numbers") from None
            if len(values) % 2 or len(values) < 6:
                raise AnnotationError(
                    f"{source}, line {line_no} ({name}), polygon {k}: need an even count of >= 6 coordinates"
                )
            polys.append(np.asarray(values, dtype=np.float32).reshape(-1, 2))
        predictions[name] = polys
    return predictions


def write_predictions(predictions: Predictions, path: str | Path) -> None:
    """Write ``.csv`` or ``.json`` by suffix, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        text = format_csv(predictions)
    elif path.suffix.lower() == ".json":
        text = to_annotations(predictions).model_dump_json(exclude_none=True, indent=1)
    else:
        raise ValueError(f"{path}: predictions must be written as .csv or .json")
    atomic_write_text(path, text)  # no ``.tmp`` left behind when the write fails


def read_predictions(path: str | Path) -> Predictions:
    """Read ``.csv`` or ``.json`` predictions by suffix."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        try:
            return parse_csv(path.read_text(encoding="utf-8"), source=str(path))
        except FileNotFoundError:
            raise AnnotationError(f"{path}: prediction file not found") from None
    return from_annotations(load_annotations(path))
