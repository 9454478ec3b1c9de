"""Prepare the wheels that a GPU machine without network needs to run ``ocrdet bench suite`` from the source tree.

The project's GPU machines (Python 3.12, torch with timm, lightning, numba, opencv, onnxruntime, matplotlib and
tensorboard) lack the packages in ``MISSING``. This downloads their cp312 manylinux wheels, at the versions
installed here, into a folder (``gpu-wheels/`` by default, git-ignored), builds antlr4's wheel from its sdist
(PyPI has no wheel of it), and writes ``requirements.txt`` beside them. ``IF_MISSING`` (scipy, which albumentations
imports, and typing-extensions, which pydantic needs recent) travel too, but are installed only where the machine
lacks them. On the GPU machine, from the source tree:

    python tools/gpu_wheels.py install --wheels gpu-wheels      # only what is not installed; no network
    PYTHONPATH=. python -m ocrdet.cli bench suite --device cuda --quick \\
        --json gpu-results/suite.json --plot gpu-results/suite.png

Here: ``python tools/gpu_wheels.py download [--out gpu-wheels] [--python-version 3.12]``.
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
IF_MISSING = ("scipy", "typing-extensions")
"""Probably on the GPU machines already (not in their list of missing packages); their wheels travel in case."""
SDIST_ONLY = ("antlr4-python3-runtime",)
"""Dependencies (of omegaconf) published as sdists only: built into a wheel here."""
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` as installed in this environment (the versions ocrdet is tested with)."""
    try:
        return [f"{name}=={metadata.version(name)}" for name in names]
    except metadata.PackageNotFoundError as exc:
        raise SystemExit(f"gpu_wheels: {exc.name} is not installed here; install ocrdet's dependencies first") from None


def download_commands(out: Path, python_version: str) -> list[list[str]]:
    """The pip commands: binary wheels for the target Python and platform, then antlr4 built from its sdist."""
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    download = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps"]
    download += ["--python-version", python_version, "--implementation", "cp", *platforms, "-d", str(out)]
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary=:all:", "-w", str(out)]
    return [download + pinned(MISSING + IF_MISSING), build + pinned(SDIST_ONLY)]


def download(out: Path, python_version: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for command in download_commands(out, python_version):
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    requirements = pinned(MISSING + IF_MISSING + SDIST_ONLY)
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
    p = sub.add_parser("install", help="on the GPU machine, offline: install the ones it lacks")
    p.add_argument("--wheels", default="gpu-wheels", help="the folder `download` wrote (default: gpu-wheels)")
    args = parser.parse_args(argv)
    if args.command == "download":
        download(Path(args.out), args.python_version)
    else:
        install(Path(args.wheels))


if __name__ == "__main__":
    main()
