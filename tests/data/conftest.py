"""Fixtures of the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_data import make_tiny


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """ROOT with split ``train``: three 64x48 JPEGs a/b/c.jpg, each with one word ``w1`` (see ``tiny_data``)."""
    return make_tiny(tmp_path)
