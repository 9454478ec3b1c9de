"""The image folder as a source: ``FolderSource`` decodes image files on the fly (the obviously correct path).

``ocrdet.data.sources.cache.CacheSource`` reads the same samples zero-copy from a prepared cache, written
through ``load_sample``, so a cache holds exactly what the folder would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ocrdet.data.check import Problem, check_dataset, usable_names
from ocrdet.data.io.decode import DecodedImage, decode_image, read_image_bytes, transform_points
from ocrdet.data.io.format import load_selected, split_paths
from ocrdet.data.sources.base import EncodedSample, Sample


def resize_long_side(image: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink uint8 (H, W, 3) ``image`` (INTER_AREA) so its long side is at most ``long_side``.

    Returns the (possibly unchanged) image and the float64 (3, 3) matrix mapping its points into the result.
    """
    height, width = image.shape[:2]
    if max(height, width) <= long_side:
        return image, np.eye(3)
    ratio = long_side / max(height, width)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return resized, np.diag([new_w / width, new_h / height, 1.0])


def shrink_sample(
    decoded: DecodedImage,
    name: str,
    polygons: list[np.ndarray],
    ignore: np.ndarray,
    long_side: int | None,
    stored: np.ndarray | None = None,
) -> Sample:
    """The Sample of a decoded image: shrunk to ``long_side`` (None: full size), its polygons (in the decoded
    file's stored frame) moved along; ``stored`` maps annotation-file points into that frame (default: same)."""
    image, resize = (decoded.image, np.eye(3)) if long_side is None else resize_long_side(decoded.image, long_side)
    matrix = resize @ decoded.matrix
    moved = [transform_points(matrix, p).astype(np.float32) for p in polygons]
    full = matrix if stored is None else matrix @ stored
    return Sample(np.ascontiguousarray(image), moved, np.asarray(ignore, dtype=bool), name, full)


def load_sample(
    path: Path,
    name: str,
    polygons: list[np.ndarray],
    ignore: np.ndarray,
    long_side: int | None,
    decode_side: int | None = None,
) -> Sample:
    """Decode ``path`` upright, shrink to ``long_side`` (None: full size) and move the stored-frame polygons along.

    JPEGs are DCT-downscaled while decoding to no less than ``decode_side`` (default ``long_side``). Validation
    samples are ``long_side=None, decode_side=eval_size``: decoded exactly as ``ocrdet predict`` decodes an image
    for its letterbox (``Detector.detect``), so that the one resize to the network input is predict's too and
    validation scores the network input that predict sees."""
    decoded = decode_image(path, min_long_side=decode_side or long_side)
    return shrink_sample(decoded, name, polygons, ignore, long_side)


class FolderSource:
    """Samples decoded from ``ROOT/images/<split>/`` on every ``get``, in the order of ``jsons/<split>.json``.

    ``long_side``: shrink images so their long side is at most this many pixels (None: full size), as
    ``ocrdet.data.sources.prepare`` does for the cache; ``decode_side``: see ``load_sample``. ``names``: only
    these images (those a check found usable), whose annotations must be valid; default all images, and then
    the whole annotation file must be valid.
    ``skipped``: what the check left out, for the run's report.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        long_side: int | None = None,
        names: Sequence[str] | None = None,
        skipped: Sequence[Problem] = (),
        decode_side: int | None = None,
    ) -> None:
        self.image_dir, json_path = split_paths(root, split)
        images = load_selected(json_path, names)
        self.names = list(images)
        self.long_side = long_side
        self.decode_side = decode_side
        self.skipped = list(skipped)
        self._annotations = [annotation.polygons() for annotation in images.values()]

    def __len__(self) -> int:
        return len(self.names)

    def get(self, index: int) -> Sample:
        """Decode image ``index``; ``ImageDecodeError`` names the file when it cannot be read."""
        polygons, ignore = self._annotations[index]
        name = self.names[index]
        return load_sample(self.image_dir / name, name, polygons, ignore, self.long_side, self.decode_side)

    def encoded(self, index: int) -> EncodedSample:
        """Image ``index`` undecoded (the file's bytes), for a backend that decodes itself (DALI)."""
        polygons, ignore = self._annotations[index]
        name = self.names[index]
        return EncodedSample(read_image_bytes(self.image_dir / name), polygons, ignore, name, np.eye(3), str(index))

    def summary(self) -> str:
        """One line: where the images are decoded from, how many, how many the check left out."""
        left_out = f", {len({p.file for p in self.skipped})} left out by the check" if self.skipped else ""
        return f"{self.image_dir}: {len(self)} images decoded on the fly (no cache){left_out}"


def open_folder(
    root: str | Path,
    split: str,
    long_side: int | None,
    on_bad_sample: str,
    workers: int | None = None,
    decode_side: int | None = None,
) -> FolderSource:
    """Check ``split`` first (``ocrdet.data.check``), then the FolderSource of the images ``on_bad_sample`` keeps.

    Raises DataCheckError, listing every problem, when the policy is ``error`` and there are problems.
    """
    report = check_dataset(root, split, workers)
    return FolderSource(root, split, long_side, usable_names(report, on_bad_sample), report.errors, decode_side)
