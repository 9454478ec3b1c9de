from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocrdet.cli import main
from ocrdet.data.io.format import load_annotations
from ocrdet.data.sources.holdout import HoldOutError, hold_out


def _names(root: Path, split: str) -> set[str]:
    return set(load_annotations(root / "jsons" / f"{split}.json").images)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_held_images_leave_the_split_and_link_to_the_originals(pristine: Path, tmp_path: Path) -> None:
    before = _tree(pristine)
    out = tmp_path / "held"
    counts = hold_out(pristine, out, 1, seed=3)
    assert counts == {"train": 3, "tune": 1, "val": 3}
    train, tune = _names(out, "train"), _names(out, "tune")
    assert not train & tune and train | tune == _names(pristine, "train")
    assert _names(out, "val") == _names(pristine, "val")
    for split in counts:
        for name in _names(out, split):
            link = out / "images" / split / name
            origin = "train" if split == "tune" else split
            assert link.is_symlink() and link.read_bytes() == (pristine / "images" / origin / name).read_bytes()
    tune_words = json.loads((out / "jsons" / "tune.json").read_text())["images"]
    original = json.loads((pristine / "jsons" / "train.json").read_text())["images"]
    assert tune_words == {name: original[name] for name in tune}
    assert _tree(pristine) == before  # ROOT is never written


def test_same_seed_same_images_other_seed_other_images(pristine: Path, tmp_path: Path) -> None:
    picks = []
    for i, seed in enumerate([0, 0, 1, 2, 3]):
        hold_out(pristine, tmp_path / str(i), 2, seed=seed)
        picks.append(frozenset(_names(tmp_path / str(i), "tune")))
    assert picks[0] == picks[1] and len(set(picks)) > 1


@pytest.mark.parametrize("count", [0, 4, -1])
def test_a_count_that_leaves_no_split_is_refused(pristine: Path, tmp_path: Path, count: int) -> None:
    with pytest.raises(HoldOutError, match=r"train\.json: cannot hold out"):
        hold_out(pristine, tmp_path / "out", count)
    assert not (tmp_path / "out").exists()


def test_missing_image_is_named_and_nothing_is_written(root: Path, tmp_path: Path) -> None:
    gone = sorted((root / "images" / "val").iterdir())[0]
    gone.unlink()
    with pytest.raises(HoldOutError, match=rf"val\.json: lists '{gone.name}'"):
        hold_out(root, tmp_path / "out", 1)
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_non_empty_out_and_an_existing_split(pristine: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    main(["holdout", str(pristine), "--out", str(out), "--count", "1"])
    assert "train 3, tune 1, val 3" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not empty"):
        main(["holdout", str(pristine), "--out", str(out), "--count", "1"])
    with pytest.raises(SystemExit, match="a split 'tune' exists already"):
        main(["holdout", str(out), "--out", str(tmp_path / "again"), "--count", "1"])
    with pytest.raises(SystemExit, match="no split 'test'"):
        main(["holdout", str(pristine), "--out", str(tmp_path / "x"), "--count", "1", "--from", "test"])
