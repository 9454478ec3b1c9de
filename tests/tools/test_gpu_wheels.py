"""tools/gpu_wheels.py: what it downloads and installs; every script in tools/ is safe to import (spawned
children re-import the main script: a script without a ``__main__`` guard would run again in each)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", sorted(TOOLS.glob("*.py")), ids=lambda p: p.name)
def test_every_script_runs_only_under_a_main_guard(script):
    tree = ast.parse(script.read_text())
    top = [node for node in tree.body if not isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef)]
    guards = [n for n in top if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    calls = [n for n in top if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    assert guards and not calls, f"{script.name}: top-level calls outside `if __name__ == '__main__':`"


def test_download_pins_this_environment_for_cp312():
    wheels = _load("gpu_wheels")
    binary, sdist = wheels.download_commands(Path("out"), "3.12")
    assert binary[binary.index("--python-version") + 1] == "3.12" and "--only-binary=:all:" in binary
    assert "--no-deps" in binary and "manylinux2014_x86_64" in binary
    pins = {arg.split("==")[0] for arg in binary if "==" in arg}
    assert {"pydantic", "pydantic-core", "pyclipper", "shapely", "simplejpeg", "albumentations", "psutil"} <= pins
    assert any(arg.startswith("antlr4-python3-runtime==") for arg in sdist) and "--no-binary=:all:" in sdist


def test_install_keeps_what_is_installed():
    wheels = _load("gpu_wheels")
    assert wheels.not_installed(["pytest==0.1", "surely-no-such-distribution==1.0"]) == [
        "surely-no-such-distribution==1.0"
    ]
    with pytest.raises(SystemExit, match="requirements.txt not found"):
        wheels.install(Path("/nonexistent"))
