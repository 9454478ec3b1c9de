"""Hold some images of one split out as a new split, in a new data set ROOT that links to the original files.

Why: post-processing (``ocrdet tune``) and any other choice made on data must use images that are neither trained
on nor reported as the result. ``hold_out(ROOT, OUT, 20)`` writes::

    OUT/images/<split>/<file>  symlinks to ROOT's images (nothing is copied, ROOT is never written)
    OUT/jsons/<split>.json     ROOT's annotation file of that split, reduced to the images it keeps

with every split of ROOT, except that ``count`` images of ``source`` (drawn with ``seed``) move to ``held``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ocrdet.atomic import atomic_write_text
from ocrdet.data.io.format import AnnotationError, read_json, split_paths


class HoldOutError(ValueError):
    """OUT is not empty, the count does not fit, or an annotated image is missing."""


def _splits(root: Path) -> list[str]:
    splits = sorted(p.stem for p in (root / "jsons").glob("*.json"))
    if not splits:
        raise AnnotationError(f"{root / 'jsons'}: no annotation files (<split>.json) in this data set ROOT")
    return splits


def _read(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise AnnotationError(f'{path}: expected {{"images": {{"<file>": ...}}}}')
    return data


def hold_out(
    root: str | Path, out: str | Path, count: int, source: str = "train", held: str = "tune", seed: int = 0
) -> dict[str, int]:
    """Write OUT (see the module docstring); returns {split: images}."""
    root, out = Path(root), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HoldOutError(f"{out}: not empty; hold_out writes a new data set ROOT")
    splits = _splits(root)
    if source not in splits:
        raise AnnotationError(f"{root}: no split {source!r} to hold images out of (splits: {', '.join(splits)})")
    if held in splits:
        raise AnnotationError(f"{root}: a split {held!r} exists already; choose another name for the held-out images")
    data = {split: _read(split_paths(root, split)[1]) for split in splits}
    names = sorted(data[source]["images"])
    if not 0 < count < len(names):
        raise HoldOutError(f"{split_paths(root, source)[1]}: cannot hold out {count} of its {len(names)} images")
    random.Random(seed).shuffle(names)
    plan = {split: (split, set(d["images"])) for split, d in data.items()}  # split: (origin, images)
    plan[source] = (source, set(names[count:]))
    plan[held] = (source, set(names[:count]))
    links = []  # every image is checked before anything is written, so an error leaves no half data set
    for split, (origin, keep) in plan.items():
        images, annotations = split_paths(root, origin)
        for name in sorted(keep):
            target = (images / name).resolve()
            if not target.is_file():
                raise HoldOutError(f"{annotations}: lists {name!r}, which is not in {images}")
            links.append((split_paths(out, split)[0] / name, target))
    for link, target in links:
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    for split, (origin, keep) in plan.items():
        reduced = {**data[origin], "images": {k: v for k, v in data[origin]["images"].items() if k in keep}}
        path = split_paths(out, split)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(reduced, ensure_ascii=False))
    return {split: len(keep) for split, (_, keep) in sorted(plan.items())}
