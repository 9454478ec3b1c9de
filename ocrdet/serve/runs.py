"""What a run directory tells: training curves from Lightning's CSV logs, the latest ``ocrdet bench`` output,
its checkpoint and its data."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

CURVES = (
    "train/loss",
    "val/hmean",
    "perf/samples_per_s",
    "perf/data_wait",
    "sys/process_cpu_pct",
    "sys/workers_cpu_pct",
    "sys/rss_mb",
    "sys/gpu_util_pct",
)
"""Columns of ``metrics.csv`` that the run page plots against ``step``."""

CHECKPOINT_NAMES = ("best.ckpt", "last.ckpt")
"""Checkpoints of ``RUN_DIR/checkpoints/`` used for evaluation and inference, first found wins."""


class RunLogError(ValueError):
    """A metrics file that cannot be read; the message names the file and line."""


def _version(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.parent.name)
    return int(match.group(1)) if match else -1


def metric_files(run_dir: Path) -> list[Path]:
    """``RUN_DIR/logs/version_*/metrics.csv`` in version order (a resumed run logs to the next version)."""
    return sorted((run_dir / "logs").glob("version_*/metrics.csv"), key=_version)


def read_curves(run_dir: Path) -> dict[str, list[tuple[float, float]]]:
    """(step, value) points of each of ``CURVES`` over all log versions; a curve never logged is empty."""
    curves: dict[str, list[tuple[float, float]]] = {name: [] for name in CURVES}
    for path in metric_files(run_dir):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RunLogError(f"{path}: not UTF-8 text (byte {exc.start}); is it a Lightning metrics.csv?") from None
        except OSError as exc:
            raise RunLogError(f"{path}: cannot read: {exc.strerror}") from None
        for line_no, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):
            for name in CURVES:
                cell = row.get(name)
                if not cell:
                    continue
                try:
                    point = (float(row["step"]), float(cell))
                except (KeyError, TypeError, ValueError):
                    raise RunLogError(f"{path}, line {line_no}: expected numbers in 'step' and {name!r}") from None
                if math.isfinite(point[1]):
                    curves[name].append(point)
    return curves


@dataclass(frozen=True)
class BenchOutput:
    table: Path | None
    """The newest ``RUN_DIR/bench/*.txt``."""
    chart: Path | None
    """The newest ``RUN_DIR/bench/*.png``."""


def latest_bench(run_dir: Path) -> BenchOutput:
    """The newest table and chart that ``ocrdet bench`` was told to write into ``RUN_DIR/bench/``."""

    def newest(pattern: str) -> Path | None:
        return max((run_dir / "bench").glob(pattern), key=lambda p: p.stat().st_mtime, default=None)

    return BenchOutput(newest("*.txt"), newest("*.png"))


def run_checkpoint(run_dir: Path) -> Path | None:
    """The run's best checkpoint, else its last, else None."""
    return next((p for p in (run_dir / "checkpoints" / n for n in CHECKPOINT_NAMES) if p.exists()), None)


def run_data_root(run_dir: Path) -> tuple[Path, str] | None:
    """(data root, validation split) from the run's ``config.json`` when that root exists."""
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["data"]
        root, split = Path(data["root"]), str(data["val_split"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (root, split) if root.is_dir() else None
