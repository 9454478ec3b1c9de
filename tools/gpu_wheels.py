"""Prepare the wheels that a GPU machine without network needs to run ``ocrdet bench suite`` from the source tree.

The project's GPU machines (Python 3.12, torch with timm, lightning, numba, opencv, onnxruntime, matplotlib and
tensorboard) lack the packages in ``MISSING``. This downloads their cp312 manylinux wheels, at the versions
installed here, into a folder (``gpu-wheels/`` by default, git-ignored), builds antlr4's wheel from its sdist
(PyPI has no wheel of it) and Polygon3's, and writes ``requirements.txt`` beside them. ``IF_MISSING`` travel too,
but are installed only where the machine lacks them. ``tests/tools/test_gpu_wheels.py`` walks the imports of the
suite and checks that each is on the GPU machines, in these wheels, or in ``NOT_FOR_THE_SUITE``. On the GPU
machine, from the source tree:

    python tools/gpu_wheels.py install --wheels gpu-wheels      # only what is not installed; no network
    PYTHONPATH=. python -m ocrdet.cli bench suite --device cuda --quick \\
        --json gpu-results/suite.json --plot gpu-results/suite.png

Here: ``python tools/gpu_wheels.py download [--out gpu-wheels] [--python-version 3.12] [--target-python PATH]``
(Polygon3, the reference of ``bench val``, has C code and no wheel: it is built by a Python 3.12 found here).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

MISSING = (
    "pyclipper",
    "shapely",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "simplejpeg",
    "hydra-core",
    "omegaconf",
    "albumentations",
    "albucore",
    "stringzilla",
    "simsimd",
    "webdataset",
    "braceexpand",
    "psutil",
    "nvidia-ml-py",
)
"""Runtime dependencies of ocrdet that the GPU machines do not have (their wheels are about 12 MB)."""
ON_GPU_MACHINES = (
    "torch",
    "torchvision",
    "timm",
    "lightning",
    "numba",
    "opencv-python-headless",
    "onnxruntime",
    "matplotlib",
    "tensorboard",
)
"""What the GPU machines have installed (with their own dependencies): Python 3.12, torch 2.11."""
IF_MISSING = ("scipy", "typing-extensions", "orjson", "onnx", "onnxscript", "onnx-ir", "ml-dtypes")
"""Not in the GPU machines' list of missing packages, yet no dependency of what they have: scipy (albumentations),
typing-extensions (recent, for pydantic), orjson (``ocrdet evaluate``), onnx (INT8 export) and onnxscript with its
dependencies (``torch.onnx.export(dynamo=True)`` imports it). Their wheels travel; they are installed only where
the machine lacks them."""
TARGET_VERSIONS = {"orjson": "3.10.18"}
"""Versions for the GPU machine where the one installed here has no cp312 wheel (orjson 3.8 predates Python 3.12)."""
SDIST_ONLY = ("antlr4-python3-runtime",)
"""Dependencies (of omegaconf) published as sdists only: built into a wheel here."""
BUILT_FOR_TARGET = ("polygon3",)
"""Published as sdists only, with C code: built here by the target's Python (``python3.12`` on PATH). Polygon3 is
the official IoU algorithm's library, the reference of ``bench val`` (a dev extra: LGPL, never a runtime
dependency of ocrdet)."""
NOT_FOR_THE_SUITE = {
    "cleval": "PyPI cleval, the reference of two eval rows; `bench eval` says 'reference not installed' without it",
    "nvidia": "NVIDIA DALI, only for data.backend=dali (788 MB: it cannot travel)",
    "fastapi": "ocrdet serve",
    "starlette": "ocrdet serve",
    "uvicorn": "ocrdet serve",
}
"""Top-level modules that ocrdet imports somewhere but the suite does not need on the GPU machine, and why."""
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` as installed in this environment (the versions ocrdet is tested with), or as
    ``TARGET_VERSIONS`` says."""
    try:
        return [f"{name}=={TARGET_VERSIONS.get(name) or metadata.version(name)}" for name in names]
    except metadata.PackageNotFoundError as exc:
        raise SystemExit(f"gpu_wheels: {exc.name} is not installed here; install ocrdet's dependencies first") from None


def download_commands(out: Path, python_version: str, target_python: str) -> list[list[str]]:
    """The pip commands: binary wheels for the target Python and platform, antlr4 built from its sdist (pure
    Python), Polygon3 built by ``target_python`` (an interpreter of the target's version: ``check_target``)."""
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    download = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps"]
    download += ["--python-version", python_version, "--implementation", "cp", *platforms, "-d", str(out)]
    build = ["-m", "pip", "wheel", "--no-deps", "--no-binary=:all:", "-w", str(out)]
    return [
        download + pinned(MISSING + IF_MISSING),
        [sys.executable, *build, *pinned(SDIST_ONLY)],
        [target_python, *build, *pinned(BUILT_FOR_TARGET)],
    ]


def check_target(target_python: str, python_version: str) -> None:
    """SystemExit unless ``target_python`` runs and is a Python ``python_version``."""
    check = f"import sys; sys.exit(sys.version.startswith('{python_version}.') is False)"
    try:
        works = subprocess.run([target_python, "-c", check], capture_output=True, timeout=60).returncode == 0
    except OSError:
        works = False
    if not works:
        names = " ".join(BUILT_FOR_TARGET)
        raise SystemExit(
            f"gpu_wheels: {names} must be built by a Python {python_version}: {target_python!r} is not one"
            " (give --target-python PATH)"
        )


def download(out: Path, python_version: str, target_python: str) -> None:
    check_target(target_python, python_version)
    out.mkdir(parents=True, exist_ok=True)
    for command in download_commands(out, python_version, target_python):
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    requirements = pinned(MISSING + IF_MISSING + SDIST_ONLY + BUILT_FOR_TARGET)
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    wheels = sorted(out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels ({size:.1f} MiB) and requirements.txt in {out}")


def not_installed(requirements: list[str]) -> list[str]:
    """The ``name==version`` lines whose distribution is not installed at all (an installed one is kept as is)."""
    missing = []
    for line in requirements:
        try:
            metadata.version(line.split("==")[0])
        except metadata.PackageNotFoundError:
            missing.append(line)
    return missing


def install(wheels: Path) -> None:
    listing = wheels / "requirements.txt"
    if not listing.is_file():
        raise SystemExit(f"gpu_wheels: {listing} not found (run `python tools/gpu_wheels.py download` first)")
    missing = not_installed([line.strip() for line in listing.read_text().splitlines() if line.strip()])
    if not missing:
        print("gpu_wheels: everything is installed already")
        return
    command = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--find-links", str(wheels)]
    print("+", " ".join(command + missing), flush=True)
    subprocess.run(command + missing, check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("download", help="here, with network: fetch and build the wheels")
    p.add_argument("--out", default="gpu-wheels", help="folder for the wheels (default: gpu-wheels)")
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default: 3.12)")
    p.add_argument("--target-python", help="an interpreter of that version, to build Polygon3 (default: python3.12)")
    p = sub.add_parser("install", help="on the GPU machine, offline: install the ones it lacks")
    p.add_argument("--wheels", default="gpu-wheels", help="the folder `download` wrote (default: gpu-wheels)")
    args = parser.parse_args(argv)
    if args.command == "download":
        download(Path(args.out), args.python_version, args.target_python or f"python{args.python_version}")
    else:
        install(Path(args.wheels))


if __name__ == "__main__":
    main()
