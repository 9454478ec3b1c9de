"""tools/gpu_wheels.py: what it downloads and installs; every script in tools/ is safe to import (spawned
children re-import the main script: a script without a ``__main__`` guard would run again in each)."""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterable, Iterator
from importlib import metadata
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
    binary, sdist, target = wheels.download_commands(Path("out"), "3.12", "python3.12")
    assert binary[binary.index("--python-version") + 1] == "3.12" and "--only-binary=:all:" in binary
    assert "--no-deps" in binary and "manylinux2014_x86_64" in binary
    pins = {arg.split("==")[0] for arg in binary if "==" in arg}
    assert {"pydantic", "pydantic-core", "pyclipper", "shapely", "simplejpeg", "albumentations", "psutil"} <= pins
    assert any(arg.startswith("antlr4-python3-runtime==") for arg in sdist) and "--no-binary=:all:" in sdist
    assert target[0] == "python3.12" and any(arg.startswith("polygon3==") for arg in target)
    assert "orjson==3.10.18" in binary  # the version installed here has no cp312 wheel


def test_polygon3_is_built_by_a_python_of_the_target_version():
    wheels = _load("gpu_wheels")
    wheels.check_target(sys.executable, ".".join(map(str, sys.version_info[:2])))
    with pytest.raises(SystemExit, match="must be built by a Python 3.99: 'python3.99' is not one"):
        wheels.check_target("python3.99", "3.99")
    with pytest.raises(SystemExit, match="is not one"):
        wheels.check_target(sys.executable, "3.99")


def test_install_keeps_what_is_installed():
    wheels = _load("gpu_wheels")
    assert wheels.not_installed(["pytest==0.1", "surely-no-such-distribution==1.0"]) == [
        "surely-no-such-distribution==1.0"
    ]
    with pytest.raises(SystemExit, match="requirements.txt not found"):
        wheels.install(Path("/nonexistent"))


PACKAGE = TOOLS.parent / "ocrdet"


def _imports(module: str) -> Iterator[str]:
    """Every module ``module`` imports, at any depth of its code (lazy imports in functions included)."""
    path = PACKAGE.parent / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def suite_imports() -> dict[str, str]:
    """Third-party top-level module -> one ocrdet module that imports it, over everything ``ocrdet bench suite``
    can reach: ``ocrdet.bench.suite`` and what it imports, transitively, plus what ``ocrdet.cli`` imports at
    module level (the command's entry point)."""
    cli = ast.parse((PACKAGE / "cli.py").read_text())
    entry = [a.name for n in cli.body if isinstance(n, ast.Import) for a in n.names]
    entry += [n.module for n in cli.body if isinstance(n, ast.ImportFrom) and n.module]
    todo, seen, found = ["ocrdet.bench.suite", *entry], set(), {}
    while todo:
        module = todo.pop()
        if module in seen or not _is_module(module):
            continue
        seen.add(module)
        for name in _imports(module):
            top = name.partition(".")[0]
            if top == "ocrdet":
                todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, module)
    return found


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _with_requirements(names: Iterable[str]) -> set[str]:
    """These distributions and everything they require (no extras), as installed here."""
    from packaging.requirements import Requirement

    out, todo = set(), [_canonical(n) for n in names]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": "", "python_version": "3.12"}):
                todo.append(_canonical(requirement.name))
    return out


def test_every_import_of_the_suite_is_on_the_gpu_machine_or_in_the_wheels():
    """The GPU machines' packages (and their requirements) plus the wheels cover every third-party import the
    suite can reach; the rest is listed in ``NOT_FOR_THE_SUITE`` with its reason. ``orjson``, ``Polygon`` (the
    reference of ``bench val``) and ``onnx`` were missing before this test."""
    wheels = _load("gpu_wheels")
    machine = _with_requirements(wheels.ON_GPU_MACHINES)
    names = (*wheels.MISSING, *wheels.IF_MISSING, *wheels.SDIST_ONLY, *wheels.BUILT_FOR_TARGET)
    carried = {_canonical(n) for n in names}
    distributions = metadata.packages_distributions()
    imports = suite_imports()
    assert {"torch", "simplejpeg", "Polygon", "orjson", "pyclipper"} <= set(imports)  # the walk sees lazy imports
    uncovered = {}
    for module, importer in imports.items():
        dists = {_canonical(d) for d in distributions.get(module, [module])}
        if not dists & (machine | carried) and module not in wheels.NOT_FOR_THE_SUITE:
            uncovered[module] = importer
    assert not uncovered, f"imported by the suite, but neither on the GPU machines nor in the wheels: {uncovered}"
