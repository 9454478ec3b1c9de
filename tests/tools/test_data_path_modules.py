"""tools/data_path_modules.py: the issue-14 measure (modules from a file on disk to the device) stays met."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "data_path_modules.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("data_path_modules", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cache", [False, True], ids=["folder", "cache"])
def test_one_batch_visits_at_most_eight_modules_from_disk_to_device(tool, tmp_path, cache):
    root = tool.write_receipts(tmp_path / "data")
    found = tool.traced(root, tmp_path / "cache", cache)
    assert len(found["path"]) <= 8, sorted(found["path"])
    assert found["setup"] == {"ocrdet.data.pipeline"}  # choosing and making the loader, nothing in train/
    source = "ocrdet.data.sources.cache" if cache else "ocrdet.data.sources.folder"
    assert {source, "ocrdet.data.transforms.item", "ocrdet.data.loaders.native"} <= found["path"]
