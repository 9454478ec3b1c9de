"""What loading one split of a data set finds wrong: a stand-in for ``ocrdet check`` until that exists."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from ocrdet.cli import IMAGE_SUFFIXES
from ocrdet.data.decode import ImageDecodeError, decode_image
from ocrdet.data.format import AnnotationError, Annotations, load_annotations, split_paths

CHECK_LONG_SIDE = 64
"""Images are decoded this small (DCT-scaled for JPEG) to find undecodable ones quickly."""


@dataclass(frozen=True)
class Problem:
    kind: str
    """``annotations`` (the JSON), ``missing`` (listed, not on disk), ``unlisted`` (on disk, not listed),
    ``undecodable`` (on disk, cannot be decoded)."""
    name: str
    """The image's file name relative to the image folder, or the annotation file's path."""
    message: str


@dataclass(frozen=True)
class SplitReport:
    annotations: Annotations
    """What loaded; empty when the annotation file could not be read."""
    on_disk: list[str]
    """Image file names found under the image folder, relative to it, sorted."""
    problems: list[Problem]


def check_split(root: Path, split: str) -> SplitReport:
    """Load ``root``'s ``split`` and list every problem found on the way, without stopping at the first."""
    image_dir, json_path = split_paths(root, split)
    problems: list[Problem] = []
    loaded = True
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            annotations = load_annotations(json_path)
        problems += [Problem("annotations", str(json_path), str(w.message)) for w in caught]
    except AnnotationError as exc:
        annotations, loaded = Annotations(images={}), False
        problems.append(Problem("annotations", str(json_path), str(exc)))
    if image_dir.is_dir():
        files = (p for p in image_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        on_disk = sorted(p.relative_to(image_dir).as_posix() for p in files)
    else:
        on_disk = []
        problems.append(Problem("missing", str(image_dir), "image folder not found"))
    present = set(on_disk)
    for name in annotations.images:
        if name not in present:
            problems.append(Problem("missing", name, "listed in the annotations but not on disk"))
    for name in on_disk:
        if loaded and name not in annotations.images:
            problems.append(Problem("unlisted", name, "on disk but not in the annotations"))
        try:
            decode_image(image_dir / name, min_long_side=CHECK_LONG_SIDE)
        except ImageDecodeError as exc:
            problems.append(Problem("undecodable", name, str(exc).removeprefix(f"{image_dir / name}: ")))
    return SplitReport(annotations, on_disk, problems)
