"""Reading a checkpoint file safely: weights and plain data only (training resumes and predict both read here)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file."""


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint file's contents, loaded with ``weights_only=True``: a checkpoint is data, never code.

    CheckpointError names the file when it is missing, truncated, not a checkpoint, or holds Python objects.
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for truncated or foreign files
        code = [line.strip().split(". ")[0] for line in str(exc).splitlines() if "GLOBAL" in line]
        if isinstance(exc, pickle.UnpicklingError) and code:
            raise CheckpointError(f"{path}: refused, it holds more than weights and data ({code[0]})") from None
        reason = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or damaged? ({reason})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    return ckpt
