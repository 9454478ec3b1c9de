"""The two files of ``ocrdet evaluate``, read fast: the ground-truth JSON and the predictions (CSV or JSON).

Ground truth is decoded with orjson into float64 arrays and checked in bulk (structure, finite numbers, >= 3
points, inside a known image size, non-zero area, no key listed twice). A file that passes is exactly what the
strict loader (``format.load_annotations``) would accept, without building a pydantic model per word; any file
that does not pass goes through that loader, so every error keeps its message. Coordinates stay float64 as
written (the metrics compare centres and ratios to the last bit).
"""

from __future__ import annotations

import csv
import gc
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ocrdet.data.io.errors import AnnotationError

OUT_OF_IMAGE_TOLERANCE = 2.0
"""Pixels a point may lie outside ``img_w`` x ``img_h`` (the annotation format's rule, ``format.py``)."""

GroundTruth = tuple[list[np.ndarray], np.ndarray, list | None]
"""One image's ground truth: float64 polygons (N, 2), ignore flags (n,) bool, transcriptions or None."""
Detections = dict[str, list[np.ndarray]]
"""File name -> float64 (N, 2) polygons."""


class MetricInputWarning(UserWarning):
    """Something in an evaluation's input that is legal but probably not what the user meant."""


def read_bytes(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationError(f"{path}: {what} file not found") from None
    except OSError as exc:
        raise AnnotationError(f"{path}: cannot read: {exc.strerror}") from None
    return data.removeprefix(b"\xef\xbb\xbf")


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: decoding a file makes hundreds of thousands of lists and dicts, none
    of them in a cycle; every 700 new ones would start a collection, and the older generations' collections walk
    all of them again (about a fifth of the time of reading 404 receipts)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _FastImages(NamedTuple):
    """A ground-truth file in bulk: image names, words per image, float64 (P, 2) points of all words, (n,) int64
    points per word, ignore flags, transcriptions and word ids of all words, in file order."""

    names: list[str]
    words_per_image: list[int]
    points: np.ndarray
    counts: np.ndarray
    ignore: list[bool]
    texts: list
    word_ids: list[str]


def _fast_images(raw: bytes) -> _FastImages | None:
    """The ground truth of a file the strict loader accepts as it is, or None for anything else (the caller then
    runs that loader). Words are checked all at once: their types, then every coordinate's type, in C-level passes."""
    import orjson

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        return None
    objects = 2 + len(images)  # the root, the images dict, each image
    words_per_image, word_ids, words, sizes = [], [], [], []
    for name, image in images.items():
        if not isinstance(image, dict) or not isinstance(image.get("words", {}), dict):
            return None
        if not _plain_name(name):
            return None
        size = (image.get("img_w"), image.get("img_h"))
        for value in size:
            if value is not None and (type(value) is not int or value <= 0):
                return None
        image_words = image.get("words", {})
        objects += ("words" in image) + len(image_words)
        words_per_image.append(len(image_words))
        word_ids += image_words
        words += image_words.values()
        sizes.append(size if None not in size else (np.inf, np.inf))
    if set(map(type, words)) - {dict}:
        return None
    points = [w.get("points") for w in words]
    flags = [w.get("illegibility", False) for w in words]
    texts = [w.get("transcription") for w in words]
    if set(map(type, points)) - {list} or set(map(type, flags)) - {bool} or set(map(type, texts)) - {str, type(None)}:
        return None
    all_points = list(chain.from_iterable(points))
    if set(map(type, all_points)) - {list} or set(map(len, all_points)) - {2}:
        return None
    numbers = list(chain.from_iterable(all_points))
    if set(map(type, numbers)) - {int, float}:
        return None
    counts = np.fromiter(map(len, points), np.int64, len(points))
    try:
        array = np.array(numbers, dtype=np.float64).reshape(-1, 2)
    except OverflowError:  # an integer beyond float64
        return None
    if (counts < 3).any() or not np.isfinite(array).all():
        return None
    if len(counts):
        if (_shoelace(array, counts) == 0).any():
            return None  # maybe collinear: the strict loader drops those with a warning
        # every point within the image size, where the image gives both
        limit = np.array(sizes, dtype=np.float64)[np.repeat(np.arange(len(sizes)), words_per_image)]
        starts = np.cumsum(counts) - counts
        low = np.minimum.reduceat(array.min(axis=1), starts)
        high = np.maximum.reduceat(array, starts)
        t = OUT_OF_IMAGE_TOLERANCE
        if ((low < -t) & np.isfinite(limit[:, 0])).any() or (high > limit + t).any():
            return None
    # A key listed twice is one object more in the text than in the decoded dict; a boolean where a number
    # belongs is one "true"/"false" more than the flags. Strings holding "{" or "true" only cost the fast path.
    if set().union(*map(dict.keys, words)) - WORD_KEYS:
        objects += len(_nested_dicts_in([v for w in words if w.keys() - WORD_KEYS for v in w.values()]))
    objects += len(_nested_dicts_in([v for i in images.values() for k, v in i.items() if k != "words"]))
    if raw.count(b"{") != objects:
        return None
    if raw.count(b"true") + raw.count(b"false") != sum(1 for w in words if "illegibility" in w):
        return None
    return _FastImages(list(images), words_per_image, array, counts, flags, texts, word_ids)


WORD_KEYS = {"points", "transcription", "illegibility"}


def _plain_name(name: str) -> bool:
    """Names that ``format.check_relative_name`` surely accepts (anything else: the strict loader decides)."""
    return (
        bool(name)
        and "\x00" not in name
        and ":" not in name
        and "\\" not in name
        and not name.startswith("/")
        and ".." not in name.split("/")
    )


def _nested_dicts_in(values: list[Any]) -> list[dict]:
    """Dicts in ``values``, at any depth (extra fields of images and words may hold some)."""
    found, stack = [], values
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found.append(value)
            stack += list(value.values())
        elif isinstance(value, list):
            stack += value
    return found


def _shoelace(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    following = np.arange(1, len(points) + 1)
    following[starts + counts - 1] = starts
    x, y = points[:, 0], points[:, 1]
    return np.add.reduceat(x * y[following] - y * x[following], starts)


def _split(points: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    ends = np.cumsum(counts).tolist()
    return [points[e - c : e] for e, c in zip(ends, counts.tolist(), strict=True)]


def read_ground_truth(
    path: str | Path, what: str = "annotation"
) -> tuple[dict[str, GroundTruth], dict[str, list[str]]]:
    """({file name: (float64 polygons, ignore flags, transcriptions)}, {file name: word ids}) of an annotation
    JSON, in file order. The same acceptance and errors as ``format.load_annotations`` (zero-area words dropped
    with its warning)."""
    path = Path(path)
    raw = read_bytes(path, what)
    with _no_gc():
        fast = _fast_images(raw)
    if fast is not None:
        polys = _split(fast.points, fast.counts)
        ignore = np.array(fast.ignore, dtype=bool)
        gts, ids = {}, {}
        end = 0
        for name, n in zip(fast.names, fast.words_per_image, strict=True):
            start, end = end, end + n
            gts[name] = (polys[start:end], ignore[start:end], fast.texts[start:end])
            ids[name] = fast.word_ids[start:end]
        return gts, ids
    from ocrdet.data.io.format import parse_annotations, read_json

    annotations = parse_annotations(read_json(path), source=str(path))
    gts, ids = {}, {}
    for name, image in annotations.images.items():
        words = list(image.words.values())
        polys = [np.array(w.points, dtype=np.float64).reshape(-1, 2) for w in words]
        gts[name] = (polys, np.array([w.illegibility for w in words], dtype=bool), [w.transcription for w in words])
        ids[name] = list(image.words)
    return gts, ids


def read_annotation_polygons(path: str | Path, what: str = "annotation") -> dict[str, GroundTruth]:
    """``read_ground_truth`` without the word ids."""
    return read_ground_truth(path, what)[0]


def warn_self_intersecting(gts: dict[str, GroundTruth], source: str, words: dict[str, list[str]] | None = None) -> None:
    """A MetricInputWarning naming image and word of every self-intersecting ground-truth polygon (as
    ``ocrdet check``): the metrics score its even-odd region, which is rarely what the annotator meant."""
    from ocrdet.eval.geometry import polygon_set

    polys = [p for g in gts.values() for p in g[0]]
    if not polys:
        return
    invalid = np.flatnonzero(~polygon_set(polys).valid)
    if len(invalid) == 0:
        return
    owners = [(name, k) for name, g in gts.items() for k in range(len(g[0]))]
    import shapely

    shown = []
    for i in invalid[:5].tolist():
        name, k = owners[i]
        word = words[name][k] if words else str(k)
        shown.append(f"image {name!r}, word {word!r} ({shapely.is_valid_reason(shapely.Polygon(polys[i]))})")
    more = f" and {len(invalid) - 5} more" if len(invalid) > 5 else ""
    warnings.warn(
        f"{source}: {len(invalid)} self-intersecting ground-truth polygon(s), scored as their even-odd region: "
        + "; ".join(shown)
        + more,
        MetricInputWarning,
        stacklevel=2,
    )


def parse_csv(text: str, source: str = "<memory>") -> Detections:
    """The competition CSV: header ``filename,polygons``, one row per image. Errors name file, line and image:
    a row that repeats an image (both line numbers), a polygon that is not an even count of >= 6 finite numbers.

    All numbers of the file are converted in one numpy call; a file that fails it is read again polygon by
    polygon, to name the one at fault."""
    csv.field_size_limit(sys.maxsize)  # a receipt's polygon cell easily exceeds the default 131,072 characters
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or [c.strip() for c in header] != ["filename", "polygons"]:
        raise AnnotationError(f"{source}: expected a 'filename,polygons' header")
    lines: dict[str, int] = {}
    cells: list[tuple[str, int, list[str]]] = []
    tokens: list[str] = []
    counts: list[int] = []
    for row in reader:
        line_no = reader.line_num
        if not row:
            continue
        if len(row) != 2:
            raise AnnotationError(f"{source}, line {line_no}: expected 2 columns, got {len(row)}")
        name, cell = row
        if name in lines:
            raise AnnotationError(
                f"{source}, lines {lines[name]} and {line_no}: two rows for image {name!r}; give each image one row"
            )
        lines[name] = line_no
        chunks = [c for c in cell.split("|") if c.strip()]
        cells.append((name, line_no, chunks))
        for chunk in chunks:
            values = chunk.split()
            tokens += values
            counts.append(len(values))
    sizes = np.array(counts, dtype=np.int64)
    try:
        numbers = np.array(tokens, dtype=np.float64)
    except ValueError:
        numbers = None
    if numbers is None or (sizes % 2).any() or (sizes < 6).any() or not np.isfinite(numbers).all():
        _name_bad_polygon(cells, source)
    points = numbers.reshape(-1, 2)
    ends = np.cumsum(sizes // 2)
    detections: Detections = {}
    k = 0
    for name, _, chunks in cells:
        detections[name] = [points[ends[i] - sizes[i] // 2 : ends[i]] for i in range(k, k + len(chunks))]
        k += len(chunks)
    return detections


def _name_bad_polygon(cells: list[tuple[str, int, list[str]]], source: str) -> None:
    """Raise the AnnotationError of the first polygon that is not an even count of >= 6 finite numbers."""
    for name, line_no, chunks in cells:
        for k, chunk in enumerate(chunks):
            where = f"{source}, line {line_no} ({name}), polygon {k}"
            try:
                values = np.array(chunk.split(), dtype=np.float64)
            except ValueError:
                raise AnnotationError(f"{where}: not numbers") from None
            if len(values) % 2 or len(values) < 6:
                raise AnnotationError(f"{where}: need an even count of >= 6 coordinates")
            if not np.isfinite(values).all():
                raise AnnotationError(f"{where}: coordinates must be finite, got {chunk.strip()!r}")


def read_detections(path: str | Path) -> Detections:
    """Predictions ``.csv`` (the competition CSV) or ``.json`` (the annotation format), by suffix, as float64."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        raw = read_bytes(path, "prediction")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AnnotationError(f"{path}: not UTF-8 text: {exc}") from None
        with _no_gc():
            return parse_csv(text, source=str(path))
    return {name: gt[0] for name, gt in read_annotation_polygons(path, "prediction").items()}
