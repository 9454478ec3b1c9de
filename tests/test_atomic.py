"""Atomic writes: the target holds the old bytes or the new ones, never a mix; no temporary file stays."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocrdet.atomic import atomic_open, atomic_write_text


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.json"
    atomic_write_text(path, "old")
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as f:
        f.write(b"half of the new")
        raise KeyboardInterrupt
    assert path.read_text() == "old" and os.listdir(path.parent) == ["file.json"]


def test_new_file_gets_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    atomic_write_text(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "new"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask
