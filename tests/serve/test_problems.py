"""The data check stand-in: every kind of problem found, none on clean data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ocrdet.data.io.format import split_paths
from ocrdet.serve.problems import check_split


def test_clean_split_has_no_problems(synth_root):
    report = check_split(synth_root, "val")
    assert report.problems == []
    assert report.on_disk == sorted(report.annotations.images) and len(report.on_disk) == 4


def test_each_problem_is_named(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    image_dir, json_path = split_paths(root, "val")
    (image_dir / "val_00000.jpg").unlink()
    (image_dir / "val_00001.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (image_dir / "sub").mkdir()
    shutil.copy(image_dir / "val_00002.jpg", image_dir / "sub" / "extra.jpg")
    (image_dir / "notes.txt").write_text("not an image, not looked at")
    found = {(p.kind, p.name) for p in check_split(root, "val").problems}
    assert found == {("missing", "val_00000.jpg"), ("undecodable", "val_00001.jpg"), ("unlisted", "sub/extra.jpg")}
    message = next(p.message for p in check_split(root, "val").problems if p.kind == "undecodable")
    assert str(image_dir) not in message and message


def test_broken_annotations_are_one_problem_not_a_crash(synth_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    _, json_path = split_paths(root, "val")
    data = json.loads(json_path.read_text())
    first = next(iter(data["images"].values()))
    next(iter(first["words"].values()))["points"] = [[0, 0], [1, 1]]
    json_path.write_text(json.dumps(data))
    problems = check_split(root, "val").problems
    assert [p.kind for p in problems] == ["annotations"]  # files are not reported unlisted on top of it
    assert "at least 3 points" in problems[0].message


def test_missing_split_is_reported(tmp_path: Path):
    problems = check_split(tmp_path, "val").problems
    assert {p.kind for p in problems} == {"annotations", "missing"}
    assert any("annotation file not found" in p.message for p in problems)
