from pathlib import Path

import tomllib

import ocrdet


def test_version_is_pyprojects():
    """``ocrdet.__version__`` (what reports print) is the version pyproject.toml gives the package."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert ocrdet.__version__ == pyproject["project"]["version"]
