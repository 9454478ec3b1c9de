"""Fixtures of the data tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny_data import make_tiny

from ocrdet.data.io.synth import generate_dataset


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """ROOT with split ``train``: three 64x48 JPEGs a/b/c.jpg, each with one word ``w1`` (see ``tiny_data``)."""
    return make_tiny(tmp_path)


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic receipts, 4 train and 3 val images; never modified (see ``root``)."""
    root = tmp_path_factory.mktemp("receipts")
    generate_dataset(root, n_train=4, n_val=3, seed=1)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    """A copy of ``pristine`` that a test may modify."""
    return Path(shutil.copytree(pristine, tmp_path / "data", copy_function=shutil.copy2))
