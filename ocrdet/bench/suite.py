"""``ocrdet bench suite``: every benchmark in one run (data, val, eval, train at each precision, inference), as
rows in one JSON file with the machine's facts, and a chart of the ratios; ``ocrdet bench compare`` reads two.

A row is one number (``value`` in ``unit``) and, where the bench measures one, ``ratio``: how many times better
than its own reference measured in the same run (reference pipeline time / ours, or steps/s over fp32's). Ratios
travel between machines; absolute values only mean something on the same hardware (``MACHINE_KEYS``).

The JSON is rewritten after each bench, so a run cut short keeps what it measured; a bench that fails is
recorded with its error and the others still run.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ocrdet.atomic import atomic_write_text
from ocrdet.parallel import usable_cores

MACHINE_KEYS = ("cpu", "cores", "gpu")
"""Facts that must be equal for absolute values to be compared."""
LIBRARIES = ("torch", "torchvision", "numpy", "opencv-python-headless", "onnxruntime", "lightning", "timm")


@dataclass(frozen=True)
class SuiteRow:
    bench: str
    name: str
    value: float
    unit: str
    """``ms/...`` (lower is better), ``.../s``, ``hmean`` (higher is better) or ``fraction`` (informative)."""
    ratio: float | None = None
    """Times better than ``reference`` in the same run (> 1: ours is faster)."""
    reference: str = ""

    @property
    def key(self) -> str:
        return f"{self.bench}/{self.name}"


@dataclass(frozen=True)
class Plan:
    """Sizes of each bench; ``quick`` plans fit the time given in ``PLANS``' comments."""

    data_n: int
    data_size: int
    data_batch: int
    data_workers: int
    val_n: int
    val_distinct: int
    """Receipts generated for the validation epoch (it cycles over them up to ``val_n``)."""
    val_long_side: int
    val_size: int
    val_batch: int
    train_steps: int
    train_warmup: int
    train_size: int
    train_batch: int
    train_workers: int
    precisions: tuple[str, ...]
    compile: tuple[bool, ...]
    infer_n: int
    infer_size: int
    infer_threads: tuple[int, ...]
    decode_n: int


def plan_for(device: str, quick: bool) -> Plan:
    """cpu quick: the CI dry run of every bench's code path at toy sizes (a 64-128 px model, 1-4 images, one
    training step: about 55 CPU seconds, most of them fixed costs: the ONNX export, four ``evaluate`` processes,
    Lightning's start); cuda quick: the GPU table of the README in under 8 minutes on one H100 with 16 cores
    (the README's "The GPU run" counts its work); without ``quick``, longer runs of the same."""
    if device == "cuda":
        workers = min(usable_cores(), 12)
        return Plan(
            data_n=64 if quick else 256,
            data_size=640,
            data_batch=16,
            data_workers=workers,
            val_n=404,
            val_distinct=64 if quick else 404,
            val_long_side=1280,
            val_size=1280,
            val_batch=16,
            train_steps=20 if quick else 100,
            train_warmup=5,
            train_size=640,
            train_batch=16,
            train_workers=workers,
            precisions=("32-true", "bf16-mixed", "16-mixed"),
            compile=(False, True),
            infer_n=16 if quick else 64,
            infer_size=640,
            infer_threads=(1, 2),
            decode_n=64 if quick else 256,
        )
    return Plan(
        data_n=4 if quick else 64,
        data_size=64 if quick else 640,
        data_batch=2 if quick else 8,
        data_workers=0 if quick else 2,
        val_n=2 if quick else 32,
        val_distinct=2 if quick else 32,
        val_long_side=320 if quick else 1280,
        val_size=128 if quick else 640,
        val_batch=2 if quick else 8,
        train_steps=1 if quick else 20,
        train_warmup=1 if quick else 3,
        train_size=64 if quick else 640,
        train_batch=2 if quick else 8,
        train_workers=0 if quick else 2,
        precisions=("32-true",) if quick else ("32-true", "bf16-mixed"),
        compile=(False,),
        infer_n=1 if quick else 16,
        infer_size=64 if quick else 640,
        infer_threads=(1,) if quick else (1, 2),
        decode_n=2 if quick else 32,
    )


def _commit() -> str:
    """The ocrdet source tree's git commit (with ``+dirty`` for uncommitted changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_facts(device: str) -> dict[str, Any]:
    """CPU model, usable cores, GPU, Python and library versions, ocrdet's commit, the device asked for."""
    from ocrdet.bench.train_bench import describe_device

    cpu = describe_device("cpu").removeprefix("cpu (").rsplit(",", 1)[0]
    return {
        "cpu": cpu,
        "cores": usable_cores(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "device": device,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "ocrdet_commit": _commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


@dataclass
class SuiteResult:
    facts: dict[str, Any]
    plan: Plan
    rows: list[SuiteRow] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each bench."""
    errors: dict[str, str] = field(default_factory=dict)
    """Bench -> the traceback of its failure."""
    reports: dict[str, str] = field(default_factory=dict)
    """Bench -> its bottleneck report."""

    def to_json(self) -> dict[str, Any]:
        return {
            "facts": self.facts,
            "plan": asdict(self.plan),
            "rows": [asdict(r) for r in self.rows],
            "seconds": self.seconds,
            "errors": self.errors,
            "reports": self.reports,
        }


def read_result(path: str | Path) -> dict[str, Any]:
    """A suite JSON as written by ``run_suite``; ``ValueError`` naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable suite result ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or not isinstance(data.get("facts"), dict):
        raise ValueError(f"{path}: not an `ocrdet bench suite` result (no 'facts' and 'rows')")
    return data


# --- the benches: each returns its rows (and maybe a bottleneck report) ------------------------------------------


def _data(plan: Plan, tmp: Path) -> tuple[list[SuiteRow], str]:
    from ocrdet.bench.data_bench import bench_data

    rows = bench_data(None, "train", plan.data_n, plan.data_size, plan.data_batch, workers=plan.data_workers)
    return [_stage_row("data", r.stage, r.ours_ms, "ms/sample", r.speedup) for r in rows], ""


def _stage_row(bench: str, stage: str, ours_ms: float, unit: str, speedup: float) -> SuiteRow:
    """A reference-vs-ours stage: our time, and the speedup over the reference pipeline where it has the stage."""
    rated = not math.isnan(speedup)
    return SuiteRow(bench, stage, ours_ms, unit, speedup if rated else None, "baseline pipeline" if rated else "")


def _val_root(plan: Plan, tmp: Path) -> Path:
    """``val_distinct`` synthetic receipts whose long side is ``val_long_side`` (the original project's size)."""
    from ocrdet.data.io.synth import SynthConfig, generate_dataset

    root = tmp / "val-receipts"
    if not root.exists():
        long = plan.val_long_side
        config = SynthConfig(width=(round(0.67 * long), round(0.75 * long)), height=(long, long))
        generate_dataset(root, 0, plan.val_distinct, seed=0, config=config)
    return root


def _val(plan: Plan, tmp: Path) -> tuple[list[SuiteRow], str]:
    from ocrdet.bench.val_bench import bench_val, bottleneck

    result = bench_val(_val_root(plan, tmp), "val", plan.val_n, plan.val_size, plan.val_batch, maps="target")
    rows = [_stage_row("val", r.stage, r.ours_ms, "ms/image", r.speedup) for r in result.rows]
    epoch_s = result.ours.images * next(r.ours_ms for r in result.rows if r.stage == "total") / 1000
    rows.append(SuiteRow("val", f"epoch of {result.ours.images} images", epoch_s, "s"))
    rows.append(SuiteRow("val", "hmean, ours", result.ours.metrics["hmean"], "hmean"))
    return rows, bottleneck(result)


def _eval(plan: Plan, tmp: Path) -> tuple[list[SuiteRow], str]:
    from ocrdet.bench.eval_bench import bench_eval

    result = bench_eval(_val_root(plan, tmp) / "jsons" / "val.json", repeats=1)
    return [_stage_row("eval", r.stage, r.ours_ms, "ms", r.speedup) for r in result.rows], ""


def _train(plan: Plan, device: str) -> tuple[list[SuiteRow], str]:
    from ocrdet.bench.train_bench import bench_train, bottleneck

    measured = bench_train(
        device,
        steps=plan.train_steps,
        batch_size=plan.train_batch,
        size=plan.train_size,
        precisions=plan.precisions,
        workers=plan.train_workers,
        warmup=plan.train_warmup,
        compile=plan.compile,
    )
    first = measured[0]
    rows = []
    for r in measured:
        name = f"{r.precision}{', compiled' if r.compile else ''}, {r.size}px batch {r.batch_size}"
        ratio = r.steps_per_s / first.steps_per_s
        rows.append(SuiteRow("train", f"{name}: steps/s", r.steps_per_s, "steps/s", ratio, measured[0].precision))
        rows.append(SuiteRow("train", f"{name}: data wait", r.data_wait, "fraction"))
        rows.append(SuiteRow("train", f"{name}: resource monitor cost", r.monitor_cost, "fraction"))
    return rows, bottleneck(measured)


def _random_checkpoint(path: Path, size: int) -> Path:
    """A checkpoint of the default DBNet with seeded random weights (``ocrdet export`` / ``predict`` read it)."""
    from ocrdet.model.dbnet import DBNet, ModelConfig
    from ocrdet.model.postprocess import PostprocessConfig

    torch.manual_seed(0)
    state = {f"model.{k}": v for k, v in DBNet(ModelConfig()).state_dict().items()}
    hparams = {"model": asdict(ModelConfig()), "postprocess": asdict(PostprocessConfig()), "eval_size": size}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    return path


def _infer(plan: Plan, tmp: Path) -> tuple[list[SuiteRow], str]:
    """ms/image of torch fp32, onnxruntime fp32 and INT8 (a random model: the H-mean rows of a trained one are in
    the README's INT8 table)."""
    from ocrdet.bench.infer_bench import bench_infer
    from ocrdet.data.io.synth import generate_dataset

    root = tmp / "infer-receipts"
    generate_dataset(root, n_train=4, n_val=plan.infer_n, seed=0)
    checkpoint = _random_checkpoint(tmp / "random.ckpt", plan.infer_size)
    measured = bench_infer(checkpoint, root, "val", plan.infer_threads)
    torch_ms = {r.threads: r.ms_per_image for r in measured if r.engine == "torch fp32"}
    rows = []
    for r in measured:
        ratio = torch_ms[r.threads] / r.ms_per_image
        name = f"{r.engine}, {r.threads} thread{'s' if r.threads > 1 else ''}, {plan.infer_size}px"
        rows.append(SuiteRow("infer", name, r.ms_per_image, "ms/image", ratio, "torch fp32, same threads"))
    return rows, ""


def _decode(plan: Plan, tmp: Path, device: str) -> tuple[list[SuiteRow], str]:
    """What ``ocrdet predict`` does before the model, per image: our CPU decode (simplejpeg, DCT-scaled) and
    OpenCV letterbox against torchvision's decode (nvJPEG on CUDA) and torch letterbox on the device, on the
    validation receipts; the device row only on CUDA, and the decoder ``predict --device`` would choose."""
    from ocrdet.data.io.gpu_decode import AUTO, CPU, GPU, choose_decoder, decode_times
    from ocrdet.infer import Detector

    files = sorted((_val_root(plan, tmp) / "images" / "val").glob("*.jpg"))
    datas = [files[k % len(files)].read_bytes() for k in range(plan.decode_n)]
    times = decode_times(datas, plan.val_size)
    where = f"long side {plan.val_long_side} to {plan.val_size}px"
    rows = [SuiteRow("decode", f"ours (CPU: simplejpeg + OpenCV), {where}", 1000 * times[CPU], "ms/image")]
    if GPU in times:
        name = f"nvJPEG + torch on the GPU, {where}"
        rows.append(SuiteRow("decode", name, 1000 * times[GPU], "ms/image", times[CPU] / times[GPU], "ours (CPU)"))
    chosen = choose_decoder(AUTO, device, datas[: Detector.DECODE_BATCH], plan.val_size)
    return rows, f"decoder predict chooses on {device}: {chosen}"


BENCHES: dict[str, Callable[[Plan, Path, str], tuple[list[SuiteRow], str]]] = {
    "data": lambda plan, tmp, device: _data(plan, tmp),
    "val": lambda plan, tmp, device: _val(plan, tmp),
    "eval": lambda plan, tmp, device: _eval(plan, tmp),
    "train": lambda plan, tmp, device: _train(plan, device),
    "infer": lambda plan, tmp, device: _infer(plan, tmp),
    "decode": lambda plan, tmp, device: _decode(plan, tmp, device),
}
"""Bench name -> what runs it, in the suite's order."""


@contextlib.contextmanager
def _announce(name: str) -> Iterator[None]:
    print(f"bench suite: {name} ...", flush=True)
    start = time.perf_counter()
    yield
    print(f"bench suite: {name} done in {time.perf_counter() - start:.0f} s", flush=True)


def run_suite(
    device: str, quick: bool, json_path: Path, plot: Path | None = None, only: tuple[str, ...] = ()
) -> SuiteResult:
    """Run the benches (``only`` these when given) on ``device`` (cpu or cuda) and write ``json_path`` after each
    (and ``plot`` at the end). A failing bench is recorded in ``errors``; the others still run."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: no CUDA device is visible to torch")
    unknown = set(only) - set(BENCHES)
    if unknown:
        raise ValueError(f"unknown bench(es) {sorted(unknown)}; choose from {list(BENCHES)}")
    plan = plan_for(device, quick)
    result = SuiteResult(machine_facts(device), plan)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ocrdet-suite-") as tmp:
        for name, bench in BENCHES.items():
            if only and name not in only:
                continue
            start = time.perf_counter()
            with _announce(name):
                try:
                    rows, report = bench(plan, Path(tmp), device)
                    result.rows += rows
                    if report:
                        result.reports[name] = report
                except Exception:  # noqa: BLE001 - one failing bench must not lose the others' numbers
                    result.errors[name] = traceback.format_exc()
                    print(f"bench suite: {name} FAILED:\n{result.errors[name]}", flush=True)
            result.seconds[name] = time.perf_counter() - start
            atomic_write_text(json_path, json.dumps(result.to_json(), indent=1))
    if plot is not None:
        plot_suite(result.rows, plot, result.facts)
    return result


def format_suite(result: SuiteResult) -> str:
    """The rows as a table, each bench's bottleneck report, and the benches that failed."""
    from ocrdet.bench.common import text_table

    lines = [("bench", "row", "value", "unit", "ratio", "vs")]
    for r in result.rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append((r.bench, r.name, f"{r.value:.4g}", r.unit, ratio, r.reference))
    facts = result.facts
    head = f"{facts['cpu']}, {facts['cores']} cores, GPU {facts['gpu'] or 'none'}; commit {facts['ocrdet_commit']}"
    text = [head, text_table(lines, text_columns=2)]
    text += [f"{name}: {report}" for name, report in result.reports.items()]
    text += [f"{name}: FAILED (traceback in the JSON)" for name in result.errors]
    return "\n".join(text)


def plot_suite(rows: list[SuiteRow], path: Path, facts: dict[str, Any]) -> None:
    """Horizontal bars of each row's ratio to its own reference (log scale), coloured by bench; PNG."""
    from matplotlib.figure import Figure

    rated = [r for r in rows if r.ratio is not None and r.ratio > 0]
    figure = Figure(figsize=(10, 0.35 * len(rated) + 1.8))
    axes = figure.subplots()
    benches = list(dict.fromkeys(r.bench for r in rated))
    colours = {b: f"C{k}" for k, b in enumerate(benches)}
    axes.barh(range(len(rated)), [r.ratio for r in rated], color=[colours[r.bench] for r in rated])
    for k, r in enumerate(rated):
        axes.annotate(f"{r.ratio:.2f}x", (r.ratio, k), xytext=(3, 0), textcoords="offset points", va="center")
    axes.set_yticks(range(len(rated)), [r.key for r in rated])
    axes.invert_yaxis()
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("times better than its own reference (log scale)")
    axes.set_title(f"ocrdet bench suite: {facts['gpu'] or facts['cpu']} ({facts['cores']} cores)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
