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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt, ValidationError, field_validator

from ocrdet.atomic import atomic_write_text
from ocrdet.data.io.errors import AnnotationError as AnnotationError

OUT_OF_IMAGE_TOLERANCE = 2.0
"""Pixels a point may lie outside ``img_w`` x ``img_h`` before the word is rejected."""


class DegeneratePolygonWarning(UserWarning):
    """Zero-area polygons were dropped while loading annotations."""


Number = Annotated[float, Strict()]
"""A JSON number: ``"12"`` and ``true`` are refused, not read as 12.0 and 1.0."""


class Word(BaseModel):
    model_config = ConfigDict(extra="allow")

    points: list[tuple[Number, Number]]
    transcription: str | None = None
    illegibility: StrictBool = False
    """A JSON boolean: ``"yes"`` or ``1`` are refused, not read as true."""

    @field_validator("points")
    @classmethod
    def _valid_points(cls, points: list[tuple[Number, Number]]) -> list[tuple[Number, Number]]:
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
    img_w: StrictInt | None = Field(default=None, gt=0)
    img_h: StrictInt | None = Field(default=None, gt=0)

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
    """Refuse file names that are empty, absolute, contain NUL or climb out of the image folder, and names not
    written as the folder listing writes them (``./a.jpg``, ``a//b.jpg``: they would never match a file)."""
    path = PurePosixPath(name.replace("\\", "/"))
    if not path.parts or "\x00" in name or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise ValueError(f"image name {name!r} must be a relative path inside the image folder")
    if PurePosixPath(name).as_posix() != name:
        raise ValueError(f"image name {name!r}: write it {PurePosixPath(name).as_posix()!r}, as the folder lists it")


def points_text(polygon: np.ndarray) -> str:
    """Points for a message, to 0.1 px (float32 values printed as floats show noise: 148.39999389648438)."""
    return str(np.round(polygon.astype(np.float64), 1).tolist())


def polygon_area(points: np.ndarray) -> float:
    """Absolute shoelace area of a float32 (N, 2) polygon."""
    return abs(cv2.contourArea(points))


@dataclass(frozen=True)
class AnnotationIssue:
    """One problem of an annotation file: where (``image`` and ``word``; None = the file as a whole) and what."""

    image: str | None
    word: str | None
    reason: str
    fatal: bool = True
    """False for what loading repairs itself: zero-area polygons are dropped."""

    def __str__(self) -> str:
        where = [f"image {self.image!r}"] if self.image is not None else []
        where += [f"word {self.word!r}"] if self.word is not None else []
        return ", ".join(where) + (": " if where else "") + self.reason


class _Object(dict):
    """A decoded JSON object that remembers the keys it held more than once (``json`` keeps the last value)."""

    duplicates: dict[str, int]


def _json_object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    counts = Counter(key for key, _ in pairs)
    obj.duplicates = {key: n for key, n in counts.items() if n > 1}
    return obj


def _duplicates(value: Any) -> dict[str, int]:
    return getattr(value, "duplicates", {})


def _pydantic_issue(image: str, error: dict[str, Any]) -> AnnotationIssue:
    loc = [str(part) for part in error["loc"]]
    word = None
    if loc[:1] == ["words"] and len(loc) > 1:
        word, loc = loc[1], loc[2:]
    field = ".".join(loc)
    message = error["msg"].removeprefix("Value error, ")
    return AnnotationIssue(image, word, (f"field {field!r}: " if field else "") + message)


def _validate_image(name: str, value: Any) -> tuple[ImageAnnotation | None, list[AnnotationIssue]]:
    """One image's entry: (its annotation with zero-area words dropped, or None if unusable; its issues).

    Zero area means all points on one line (convex hull of area 0); a self-intersecting "bow tie" whose
    lobes cancel has a signed area of 0 too but is kept, for the data check to report.
    """
    try:
        check_relative_name(name)
        image = ImageAnnotation.model_validate(value)
    except ValidationError as exc:
        return None, [_pydantic_issue(name, e) for e in exc.errors()]
    except ValueError as exc:
        return None, [AnnotationIssue(name, None, str(exc))]
    issues = [
        AnnotationIssue(name, word, f"word id listed {n} times; JSON keeps only the last one")
        for word, n in _duplicates(value.get("words") if isinstance(value, dict) else None).items()
    ]
    for word_id, word in list(image.words.items()):
        poly = word.polygon()
        if image.img_w is not None and image.img_h is not None:
            t = OUT_OF_IMAGE_TOLERANCE
            if (poly.min() < -t) or (poly[:, 0].max() > image.img_w + t) or (poly[:, 1].max() > image.img_h + t):
                size = f"{image.img_w}x{image.img_h}"
                reason = f"points {points_text(poly)} lie outside the {size} image"
                issues.append(AnnotationIssue(name, word_id, reason))
        if polygon_area(cv2.convexHull(poly)) <= 0.0:
            del image.words[word_id]
            issues.append(AnnotationIssue(name, word_id, "zero-area polygon dropped", fatal=False))
    return (None if any(i.fatal for i in issues) else image), issues


def validate_annotations(data: Any) -> tuple[Annotations, list[AnnotationIssue]]:
    """Validate a decoded JSON object image by image, never raising.

    Returns the images without fatal issues (zero-area words dropped) and every issue found, in file order.
    An image listed twice, or holding a word id twice, is an issue: JSON readers keep only the last entry.
    """
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        return Annotations(images={}), [AnnotationIssue(None, None, 'expected {"images": {"<file>": {...}, ...}}')]
    issues = [
        AnnotationIssue(name, None, f"image listed {n} times; JSON keeps only the last entry")
        for name, n in _duplicates(images).items()
    ]
    good = {}
    for name, value in images.items():
        image, found = _validate_image(name, value)
        issues += found
        if image is not None and name not in _duplicates(images):
            good[name] = image
    return Annotations.model_construct(images=good), issues


def parse_annotations(data: Any, source: str = "<memory>") -> Annotations:
    """Validate a decoded JSON object; any fatal issue raises AnnotationError naming ``source``, image and word.

    Words whose points lie more than OUT_OF_IMAGE_TOLERANCE px outside a known image size are errors;
    zero-area polygons (all points on one line) are dropped with one DegeneratePolygonWarning.
    """
    annotations, issues = validate_annotations(data)
    fatal = [issue for issue in issues if issue.fatal]
    if fatal:
        problems = "\n  ".join(map(str, fatal[:20]))
        more = f"\n  ... and {len(fatal) - 20} more" if len(fatal) > 20 else ""
        raise AnnotationError(f"{source}: invalid annotations:\n  {problems}{more}")
    if issues:
        warnings.warn(f"{source}: dropped {len(issues)} zero-area polygon(s)", DegeneratePolygonWarning, stacklevel=2)
    return annotations


def read_json(path: str | Path) -> Any:
    """Decode a JSON file; AnnotationError names the file when it is missing, unreadable or not JSON.

    Objects are ``dict`` subclasses that remember duplicated keys, which ``validate_annotations`` reports.
    """
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"), object_pairs_hook=_json_object)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise AnnotationError(f"{path}: not valid JSON: nested too deeply") from None


def load_annotations(path: str | Path) -> Annotations:
    """Read and validate an annotation JSON file (strict: see ``parse_annotations``)."""
    return parse_annotations(read_json(path), source=str(Path(path)))


def load_selected(path: str | Path, names: Sequence[str] | None = None) -> dict[str, ImageAnnotation]:
    """{name: annotation} of ``names`` in that order (the images a data check kept: each must have valid
    annotations, the rest of the file may not), or of every image, and then the whole file must be valid."""
    if names is None:
        return load_annotations(path).images
    images = validate_annotations(read_json(path))[0].images
    invalid = [name for name in names if name not in images]
    if invalid:
        raise AnnotationError(f"{path}: no valid annotations for {invalid[:5]} ({len(invalid)} images)")
    return {name: images[name] for name in names}


def save_annotations(annotations: Annotations, path: str | Path) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file."""
    atomic_write_text(path, annotations.model_dump_json(exclude_none=True, indent=1))


def split_paths(root: str | Path, split: str) -> tuple[Path, Path]:
    """(image folder, annotation file) of one split of a data set ROOT."""
    root = Path(root)
    return root / "images" / split, root / "jsons" / f"{split}.json"
