"""How many ocrdet modules one training batch visits on its way from a file on disk to a tensor on the device.

The measure of issue 14 (target: at most 8). ``sys.setprofile`` records the module of every Python function
that runs while one training batch is read (no DataLoader workers, so every call is in this process) and moved
to the device with Lightning's ``transfer_batch_to_device``; making the loader (``train_dataloader()``) is
traced apart, as ``setup``. Both sources are measured: the image folder (``data.cache=false``: JPEG files
decoded on the fly) and the prepared cache (the default), on three synthetic receipts written here.

    PYTHONPATH=. python tools/data_path_modules.py [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any


def modules_of(run: Callable[[], Any]) -> tuple[Any, set[str]]:
    """``run()``'s result and the ``ocrdet.*`` modules whose functions ran during it."""
    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            name = frame.f_globals.get("__name__", "")
            if name.startswith("ocrdet."):
                seen.add(name)

    sys.setprofile(profile)
    try:
        return run(), seen
    finally:
        sys.setprofile(None)


def traced(root: Path, cache_dir: Path, cache: bool, device: str = "cpu") -> dict[str, set[str]]:
    """``{"setup": modules making the training loader, "path": modules reading one batch onto the device}``."""
    import torch
    from lightning import LightningModule

    from ocrdet.data.config import DataConfig
    from ocrdet.data.pipeline import make_datamodule

    config = DataConfig(root=str(root), batch_size=2, num_workers=0, cache=cache, cache_dir=str(cache_dir))
    datamodule = make_datamodule(config, seed=0)
    loader, setup = modules_of(datamodule.train_dataloader)

    def one_batch() -> Any:
        batch = next(iter(loader))
        return LightningModule().transfer_batch_to_device(batch, torch.device(device), 0)

    _, path = modules_of(one_batch)
    return {"setup": setup - path, "path": path}


def write_receipts(root: Path) -> Path:
    """Three synthetic receipts for training and one for validation at ``root``."""
    from ocrdet.data.io.synth import generate_dataset

    generate_dataset(root, 3, 1, seed=0)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_receipts(Path(tmp) / "data")
        for source, cache in (("folder", False), ("cache", True)):
            found = traced(root, Path(tmp) / "cache", cache, args.device)
            print(f"{source}: {len(found['path'])} modules on the path, + {len(found['setup'])} making the loader")
            for part in ("path", "setup"):
                print("\n".join(f"  {part:5} {name}" for name in sorted(found[part])))


if __name__ == "__main__":
    main()
