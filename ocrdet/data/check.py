"""``ocrdet check``: every problem of a data set split, each with its file and reason, found before training.

Checked: the annotation file (JSON syntax, the format, image names listed twice, word ids listed twice, names
that would leave the image folder); each word's polygon (at least 3 finite points, simple, inside its image);
each image file (on disk, decodable, at most ``MAX_PIXELS``, its size equal to ``img_w`` x ``img_h`` when
given). JPEGs are decoded DCT-scaled to 1/8, which still reads all their data, so truncation and corruption
are found at a fraction of a full decode; the files are spread over all cores.

``on_bad_sample`` decides what training does with the result: ``error`` stops with the whole list, ``skip``
leaves the unusable images out and records them (``write_skip_report``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from ocrdet.atomic import atomic_write_text
from ocrdet.data.io.decode import IMAGE_SUFFIXES, ImageDecodeError, decode_image
from ocrdet.data.io.format import (
    OUT_OF_IMAGE_TOLERANCE,
    AnnotationError,
    Annotations,
    check_relative_name,
    points_text,
    read_json,
    split_paths,
    validate_annotations,
)
from ocrdet.parallel import ordered_map, usable_cores


class OnBadSample(str, Enum):
    """What a bad image or annotation does (``data.on_bad_sample``, converted once by ``DataConfig``): ``error``
    stops before training with the list of every problem; ``skip`` trains on the rest and lists what was left
    out in ``run_dir/skipped.json``."""

    ERROR = "error"
    SKIP = "skip"


CHECK_LONG_SIDE = 64
"""Images are decoded this small (JPEG: DCT-scaled, at most 1/8) to find undecodable ones quickly."""

ANNOTATIONS, MISSING, UNLISTED, UNDECODABLE, READ = "annotations", "missing", "unlisted", "undecodable", "read"


@dataclass(frozen=True)
class Problem:
    kind: str
    """``annotations`` (the JSON or a word in it), ``missing`` (listed, not on disk), ``unlisted`` (on disk,
    not listed), ``undecodable`` (on disk, cannot be decoded or too large) or ``read`` (failed when training
    read it, e.g. a file changed after the check)."""
    file: str
    """Image file name relative to ``images/<split>/``; for the split as a whole, its annotation file or folder."""
    word: str | None
    """Word id in the annotations, when the problem is one word's."""
    reason: str
    fatal: bool = True
    """False for warnings, which leave the image usable: an unlisted file, a zero-area polygon dropped."""

    def __str__(self) -> str:
        return self.file + (f" word {self.word!r}" if self.word is not None else "") + f": {self.reason}"


@dataclass(frozen=True)
class CheckReport:
    root: Path
    split: str
    annotations: Annotations
    """The images whose annotations are valid (some of them may still have file problems)."""
    listed: int
    """Image entries in the annotation file."""
    on_disk: list[str]
    """Image files under ``images/<split>/``, relative to it, sorted."""
    problems: list[Problem]
    sizes: dict[str, tuple[int, int]]
    """Stored (width, height) of every listed image that decoded."""

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.fatal]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.fatal]

    @property
    def usable(self) -> list[str]:
        """Names of the images training can use, in annotation-file order."""
        bad = {p.file for p in self.errors}
        return [name for name in self.annotations.images if name in self.sizes and name not in bad]

    def counts(self) -> dict[str, int]:
        usable = self.usable
        words = [len(self.annotations.images[name].words) for name in usable]
        return {
            "listed": self.listed,
            "on_disk": len(self.on_disk),
            "usable": len(usable),
            "unusable": self.listed - len(usable),
            "words": sum(words),
            "images_without_words": words.count(0),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
        }


class DataCheckError(ValueError):
    """A data set that training must not start on; the message lists every problem with its file."""

    def __init__(self, report: CheckReport, headline: str) -> None:
        super().__init__(f"{headline}\n{format_report(report)}")
        self.report = report


def _inspect(path: Path) -> tuple[int, int] | str:
    """Stored (width, height) of a decodable image, else why it cannot be used."""
    try:
        return decode_image(path, min_long_side=CHECK_LONG_SIDE).stored_size
    except ImageDecodeError as exc:
        return str(exc).removeprefix(f"{path}: ")
    except Exception as exc:  # noqa: BLE001 - one strange file must not stop the check of the others
        return f"cannot decode ({type(exc).__name__}: {exc})"


def _files_on_disk(image_dir: Path) -> list[str]:
    files = (p for p in image_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(p.relative_to(image_dir).as_posix() for p in files)


def listed_names(data: Any) -> list[str]:
    """Image names of the annotation file that may be looked up on disk (valid or not otherwise)."""
    images = data.get("images") if isinstance(data, dict) else None
    names = []
    for name in images if isinstance(images, dict) else ():
        try:
            check_relative_name(name)
        except ValueError:
            continue
        names.append(name)
    return names


def _geometry_problems(annotations: Annotations, sizes: dict[str, tuple[int, int]]) -> list[Problem]:
    """Image sizes that disagree with ``img_w``/``img_h``, words outside their image, self-intersecting words."""
    problems = []
    shapes, owners = [], []
    for name, image in annotations.images.items():
        if name not in sizes:
            continue
        width, height = sizes[name]
        mismatch = image.img_w is not None and image.img_h is not None and (image.img_w, image.img_h) != (width, height)
        if mismatch:
            reason = f"the annotations give {image.img_w}x{image.img_h} pixels, the file has {width}x{height}"
            problems.append(Problem(ANNOTATIONS, name, None, reason))
        t = OUT_OF_IMAGE_TOLERANCE
        for word_id, word in image.words.items():
            poly = word.polygon()
            outside = poly.min() < -t or poly[:, 0].max() > width + t or poly[:, 1].max() > height + t
            if outside and not mismatch:
                reason = f"points {points_text(poly)} lie outside the {width}x{height} image"
                problems.append(Problem(ANNOTATIONS, name, word_id, reason))
            shapes.append(shapely.Polygon(poly))
            owners.append((name, word_id))
    if shapes:
        invalid = np.flatnonzero(~shapely.is_valid(np.array(shapes, dtype=object)))
        for i in invalid.tolist():
            reason = f"polygon is not simple ({shapely.is_valid_reason(shapes[i])}); are its points in order?"
            problems.append(Problem(ANNOTATIONS, *owners[i], reason))
    return problems


def check_dataset(root: str | Path, split: str, workers: int | None = None) -> CheckReport:
    """Every problem of ``root``'s ``split``; never stops at the first. workers: processes (None: all cores)."""
    root = Path(root)
    image_dir, json_path = split_paths(root, split)
    problems: list[Problem] = []
    try:
        data, loaded = read_json(json_path), True
    except AnnotationError as exc:
        data, loaded = None, False
        problems.append(Problem(ANNOTATIONS, str(json_path), None, str(exc).removeprefix(f"{json_path}: ")))
    annotations, issues = validate_annotations(data) if loaded else (Annotations(images={}), [])
    entries = data.get("images") if isinstance(data, dict) else None
    loaded = loaded and isinstance(entries, dict)
    problems += [Problem(ANNOTATIONS, i.image or str(json_path), i.word, i.reason, i.fatal) for i in issues]
    if image_dir.is_dir():
        on_disk = _files_on_disk(image_dir)
    else:
        on_disk = []
        problems.append(Problem(MISSING, str(image_dir), None, "image folder not found"))
    present = set(on_disk)
    listed = listed_names(data)
    missing = [name for name in listed if name not in present]
    problems += [Problem(MISSING, name, None, "listed in the annotations but not on disk") for name in missing]
    if loaded:
        listed_set = set(listed)
        problems += [
            Problem(UNLISTED, n, None, "on disk but not in the annotations", fatal=False)
            for n in on_disk
            if n not in listed_set
        ]
    names = [n for n in listed if n in present]
    workers = max(1, min(len(names), workers or usable_cores()))
    with ordered_map(workers, chunksize=max(1, min(16, len(names) // (workers * 8)))) as mapped:
        results = list(mapped(_inspect, [image_dir / n for n in names]))
    sizes = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, str):
            problems.append(Problem(UNDECODABLE, name, None, result))
        else:
            sizes[name] = result
    problems += _geometry_problems(annotations, sizes)
    return CheckReport(root, split, annotations, len(entries) if loaded else 0, on_disk, problems, sizes)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def format_report(report: CheckReport) -> str:
    """A header with the counts, then one line per problem: severity, file, word, reason."""
    c = report.counts()
    lines = [
        f"{report.root} split {report.split!r}: {c['listed']} images listed, {c['on_disk']} on disk, "
        f"{c['usable']} usable ({c['words']} words, {c['images_without_words']} images without words); "
        f"{_count(c['errors'], 'error')}, {_count(c['warnings'], 'warning')}"
    ]
    lines += [f"  {'error' if p.fatal else 'warning':<8} {p}" for p in report.problems]
    return "\n".join(lines)


def usable_names(report: CheckReport, on_bad_sample: OnBadSample) -> list[str]:
    """The images to train on under policy ``on_bad_sample``; DataCheckError when training must not start."""
    c = report.counts()
    if c["errors"] and on_bad_sample != OnBadSample.SKIP:
        raise DataCheckError(
            report,
            f"{_count(c['errors'], 'problem')} make {c['unusable']} of {c['listed']} images unusable; fix them, "
            "or set data.on_bad_sample=skip to train on the others",
        )
    if not c["usable"]:
        raise DataCheckError(report, f"no usable image in split {report.split!r}")
    return report.usable


def write_skip_report(path: str | Path, skipped: dict[str, Sequence[Problem]]) -> None:
    """Write ``{split: [problem, ...]}`` as JSON, atomically."""
    data = {split: [asdict(p) for p in problems] for split, problems in skipped.items()}
    atomic_write_text(path, json.dumps(data, indent=1))


def read_skip_report(path: str | Path) -> dict[str, list[Problem]]:
    """What ``write_skip_report`` wrote."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return {split: [Problem(**p) for p in problems] for split, problems in data.items()}


def check_command(root: str | Path, splits: Sequence[str] = (), workers: int | None = None) -> int:
    """``ocrdet check``: print the report of each split (default: every ``jsons/*.json``); 1 if any has errors."""
    root = Path(root)
    splits = list(splits) or sorted(p.stem for p in (root / "jsons").glob("*.json"))
    if not splits:
        print(f"{root}: no annotation files {root / 'jsons'}/<split>.json")
        return 1
    status = 0
    for split in splits:
        report = check_dataset(root, split, workers)
        print(format_report(report))
        status = status or int(bool(report.errors))
    return status
