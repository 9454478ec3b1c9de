"""Post-processing chosen on data and stored with the model: ``ocrdet tune CKPT --data ROOT --split tune``.

The model runs once per image; the saved-maps sweep (``ocrdet.eval.sweep``) then tries each setting on those maps,
one setting at a time (binary threshold, then ``box_thresh``, then ``unclip_ratio``), each at the best values found
so far. The winners go into the checkpoint's ``hyper_parameters["postprocess"]``, which ``predict`` and
``export`` (ONNX metadata) read, with a record of the split they were chosen on (``TUNED_KEY``).

Tune on a split you do not report: the chosen values fit that split, so H-mean measured on it is optimistic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ocrdet.atomic import atomic_open
from ocrdet.checkpoint import CheckpointError, read_checkpoint
from ocrdet.eval.evaluate import GroundTruth
from ocrdet.eval.sweep import SavedMaps, SweepResult, parse_sweep, sweep
from ocrdet.infer import Detector
from ocrdet.model.postprocess import PostprocessConfig

DEFAULT_GRIDS = ("thresh=0.2:0.5:0.05", "box_thresh=0.3:0.8:0.05", "unclip_ratio=1.2:2.4:0.1")
"""The settings tuned, in order, and the values tried (``evaluate --sweep`` syntax)."""
TUNED_KEY = "postprocess_tuned"
"""``hyper_parameters`` key recording where the stored post-processing was chosen: data, split, metric, H-mean."""


@dataclass(frozen=True)
class TuneResult:
    config: PostprocessConfig
    """The chosen settings (those not tuned are the checkpoint's)."""
    sweeps: list[SweepResult]
    """One per tuned setting, in order; ``sweeps[-1]``'s best H-mean is the chosen settings' H-mean."""

    @property
    def hmean(self) -> float:
        return self.sweeps[-1].metrics[self.sweeps[-1].best]["hmean"]


def tune(
    saved: SavedMaps,
    gts: Mapping[str, GroundTruth],
    start: PostprocessConfig,
    grids: Sequence[str] = DEFAULT_GRIDS,
    metric: str = "hmean",
) -> TuneResult:
    """Sweep each setting of ``grids`` in turn on ``saved`` maps, keeping the best value of each for the next."""
    config, sweeps = start, []
    for spec in grids:
        param, values = parse_sweep(spec)
        result = sweep(saved, dict(gts), param, values, config, metric)
        config = replace(config, **{param: result.values[result.best]})
        sweeps.append(result)
    return TuneResult(config, sweeps)


def detector_maps(detector: Detector, paths: Sequence[Path]) -> SavedMaps:
    """The detector's probability maps of ``paths`` (stored frame orientation), as ``predict --save-maps`` saves."""
    names, maps, scales = [], [], []
    for path in paths:
        detection = detector.detect(path)
        names.append(path.name)
        maps.append(detection.prob_map.astype(np.float16))
        scales.append(detection.map_scale)
    return SavedMaps(names, maps, np.asarray(scales, dtype=np.float32).reshape(-1, 2))


def store_postprocess(path: str | Path, config: PostprocessConfig, record: dict[str, Any]) -> None:
    """Write ``config`` into the checkpoint at ``path`` (atomically), with ``record`` under ``TUNED_KEY``."""
    ckpt = read_checkpoint(path)
    hparams = ckpt.get("hyper_parameters")
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{path}: not an ocrdet checkpoint (no hyper_parameters)")
    hparams["postprocess"] = asdict(config)
    hparams[TUNED_KEY] = record
    with atomic_open(path) as f:
        torch.save(ckpt, f)


def format_tune(result: TuneResult, before: PostprocessConfig) -> str:
    """One line per tuned setting: old -> new value and the H-mean after it."""
    lines = []
    for s in result.sweeps:
        best = s.metrics[s.best]
        old, new = getattr(before, s.param), s.values[s.best]
        lines.append(f"{s.param:>14}: {old:.4g} -> {new:.4g}   ({s.metric} {best['hmean']:.4f})")
    return "\n".join(lines)
