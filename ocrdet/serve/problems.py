"""What the data browser shows about a split: what loaded, the files on disk, every problem `ocrdet check` finds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocrdet.data.check import Problem as CheckProblem
from ocrdet.data.check import check_dataset
from ocrdet.data.io.format import Annotations


@dataclass(frozen=True)
class Problem:
    kind: str
    """As ``ocrdet.data.check.Problem.kind``: ``annotations``, ``missing``, ``unlisted``, ``undecodable``."""
    name: str
    """The image's file name relative to the image folder, or the annotation file's or folder's path."""
    message: str


@dataclass(frozen=True)
class SplitReport:
    annotations: Annotations
    """The images whose annotations are valid; empty when the annotation file could not be read."""
    on_disk: list[str]
    """Image file names found under the image folder, relative to it, sorted."""
    problems: list[Problem]


def _shown(problem: CheckProblem) -> Problem:
    word = f"word {problem.word!r}: " if problem.word is not None else ""
    return Problem(problem.kind, problem.file, word + problem.reason)


def check_split(root: Path, split: str) -> SplitReport:
    """The data check of ``root``'s ``split`` (decoding in this process: the app serves requests from threads)."""
    report = check_dataset(root, split, workers=1)
    return SplitReport(report.annotations, report.on_disk, [_shown(p) for p in report.problems])
