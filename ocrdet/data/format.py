"""The receipt annotation format: the one place it is defined.

```
{"images": {"<file>": {"words": {"<id>": {"points": [[x, y], ...],
                                          "transcription": "...",   # optional
                                          "illegibility": false}},  # optional, true = don't care
                       "img_w": 800, "img_h": 1200}}}                # optional
```
File names are relative to ``ROOT/images/<split>/`` and may not leave it.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

OUT_OF_IMAGE_TOLERANCE = 2.0
"""Pixels a point may lie outside ``img_w`` x ``img_h`` before the word is rejected."""


class AnnotationError(ValueError):
    """A problem in an annotation file, named by file, image and word id."""


class DegeneratePolygonWarning(UserWarning):
    """Zero-area polygons were dropped while loading annotations."""


class Word(BaseModel):
    model_config = ConfigDict(extra="allow")

    points: list[tuple[float, float]]
    transcription: str | None = None
    illegibility: bool = False

    @field_validator("points")
    @classmethod
    def _valid_points(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(points) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
        for x, y in points:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"point ({x}, {y}) is not finite")
        return points

    def polygon(self) -> np.ndarray:
        """Points as a float32 array of shape (N, 2)."""
        return np.asarray(self.points, dtype=np.float32).reshape(-1, 2)


class ImageAnnotation(BaseModel):
    model_config = ConfigDict(extra="allow")

    words: dict[str, Word] = Field(default_factory=dict)
    img_w: int | None = Field(default=None, gt=0)
    img_h: int | None = Field(default=None, gt=0)

    def polygons(self) -> tuple[list[np.ndarray], np.ndarray]:
        """(polygons, ignore): float32 (N_i, 2) arrays and a bool array of don't-care flags."""
        words = list(self.words.values())
        return [w.polygon() for w in words], np.array([w.illegibility for w in words], dtype=bool)


class Annotations(BaseModel):
    images: dict[str, ImageAnnotation]

    @field_validator("images")
    @classmethod
    def _safe_names(cls, images: dict[str, ImageAnnotation]) -> dict[str, ImageAnnotation]:
        for name in images:
            check_relative_name(name)
        return images


def check_relative_name(name: str) -> None:
    """Refuse file names that are absolute or climb out of the image folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if not name or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise ValueError(f"image name {name!r} must be a relative path inside the image folder")


def polygon_area(points: np.ndarray) -> float:
    """Absolute shoelace area of a float32 (N, 2) polygon."""
    return abs(cv2.contourArea(points))


def _describe(error: dict[str, Any]) -> str:
    loc = list(error["loc"])
    where = []
    if loc[:1] == ["images"] and len(loc) > 1:
        where.append(f"image {loc[1]!r}")
        if loc[2:3] == ["words"] and len(loc) > 3:
            where.append(f"word {loc[3]!r}")
            rest = loc[4:]
        else:
            rest = loc[2:]
    else:
        rest = loc
    field = ".".join(str(p) for p in rest)
    return ", ".join(where + ([f"field {field!r}"] if field else [])) + f": {error['msg']}"


def parse_annotations(data: Any, source: str = "<memory>") -> Annotations:
    """Validate a decoded JSON object; errors name ``source``, the image and the word id.

    Words whose points lie more than OUT_OF_IMAGE_TOLERANCE px outside a known image size
    are errors; zero-area polygons are dropped with one DegeneratePolygonWarning.
    """
    try:
        annotations = Annotations.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors()[:20])
        more = f"\n  ... and {exc.error_count() - 20} more" if exc.error_count() > 20 else ""
        raise AnnotationError(f"{source}: invalid annotations:\n  {problems}{more}") from None
    dropped = 0
    for name, image in annotations.images.items():
        for word_id, word in list(image.words.items()):
            poly = word.polygon()
            if image.img_w is not None and image.img_h is not None:
                t = OUT_OF_IMAGE_TOLERANCE
                if (poly.min() < -t) or (poly[:, 0].max() > image.img_w + t) or (poly[:, 1].max() > image.img_h + t):
                    raise AnnotationError(
                        f"{source}: image {name!r}, word {word_id!r}: points {poly.tolist()} lie outside "
                        f"the {image.img_w}x{image.img_h} image"
                    )
            if polygon_area(poly) <= 0.0:
                del image.words[word_id]
                dropped += 1
    if dropped:
        warnings.warn(f"{source}: dropped {dropped} zero-area polygon(s)", DegeneratePolygonWarning, stacklevel=2)
    return annotations


def load_annotations(path: str | Path) -> Annotations:
    """Read and validate an annotation JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not valid JSON: {exc}") from None
    return parse_annotations(data, source=str(path))


def save_annotations(annotations: Annotations, path: str | Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(annotations.model_dump_json(exclude_none=True, indent=1), encoding="utf-8")
    tmp.replace(path)


def split_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """(image folder, annotation file) of one split of a data set ROOT."""
    root = Path(root)
    return root / "images" / split, root / "jsons" / f"{split}.json"
