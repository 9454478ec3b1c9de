"""``ocrdet``: one entry point, one subcommand per job. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import errno
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # decode loads PIL, simplejpeg and OpenCV: only the commands that read images import it
    from ocrdet.data.io.decode import ImageDecodeError

PREDICTION_SUFFIXES = (".csv", ".json")
ELSEWHERE = "write elsewhere (--out, run_dir=, data.cache_dir=)"
OS_ERROR_ADVICE = {
    errno.ENOSPC: f"the disk is full: free space there, or {ELSEWHERE}",
    errno.EDQUOT: f"the disk quota is used up: free space there, or {ELSEWHERE}",
    errno.EROFS: f"that file system is read-only: {ELSEWHERE}",
    errno.EACCES: f"no permission: change the folder's permissions, or {ELSEWHERE}",
}
"""What to do about the OS errors that any command can meet while writing; a message instead of a traceback."""


def count(n: int, noun: str) -> str:
    """``1 image``, ``2 images``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _image_paths(items: list[str]) -> list[Path]:
    """Files as given; folders expanded to the images they hold (sorted)."""
    from ocrdet.data.io.decode import IMAGE_SUFFIXES

    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif item.exists():
            paths.append(item)
        else:
            raise SystemExit(f"ocrdet: {item}: no such file or folder")
    return paths


def check_distinct_names(paths: list[Path]) -> None:
    """Predictions and overlays are keyed by file name: two inputs with one name would collapse into one row."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        by_name[path.name].append(path)
    clashes = {name: found for name, found in by_name.items() if len(found) > 1}
    if clashes:
        lines = [f"  {name}: {', '.join(map(str, found))}" for name, found in sorted(clashes.items())]
        raise SystemExit(
            "ocrdet predict: inputs with the same file name would share one prediction row and one overlay;"
            " predict them in separate runs, or rename them:\n" + "\n".join(lines)
        )


def check_predict_outputs(out: Path, overlay: Path | None, save_maps: Path | None) -> None:
    """Refuse output paths that cannot be written, before the model loads (not after an hour of inference)."""
    if out.suffix.lower() not in PREDICTION_SUFFIXES:
        raise SystemExit(f"ocrdet predict: --out {out}: name a .csv or .json file (the suffix picks the format)")
    if out.is_dir():
        raise SystemExit(f"ocrdet predict: --out {out} is a folder; name a .csv or .json file")
    if overlay is not None and overlay.exists() and not overlay.is_dir():
        raise SystemExit(f"ocrdet predict: --overlay {overlay} is a file; name a folder for the overlay PNGs")
    if save_maps is not None and (save_maps.suffix.lower() != ".npz" or save_maps.is_dir()):
        raise SystemExit(f"ocrdet predict: --save-maps {save_maps}: name a .npz file")
    for given in filter(None, (out, overlay, save_maps)):
        parent = next((p for p in given.absolute().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise SystemExit(f"ocrdet predict: {given}: {parent} is a file, not a folder")


def cmd_synth(args: argparse.Namespace) -> None:
    from ocrdet.data.io.synth import generate_dataset, synth_config

    config = synth_config(args.preset, args.level)
    counts = generate_dataset(
        Path(args.out), args.train, args.val, args.test, seed=args.seed, force=args.force, config=config
    )
    print(f"wrote {counts} synthetic receipts to {args.out}")


def cmd_holdout(args: argparse.Namespace) -> None:
    from ocrdet.data.sources.holdout import hold_out

    counts = hold_out(args.root, args.out, args.count, source=args.source, held=args.held, seed=args.seed)
    print(f"wrote {args.out}: " + ", ".join(f"{split} {n}" for split, n in counts.items()) + " images (links)")


def cmd_train(args: argparse.Namespace) -> None:
    from ocrdet.train.config import compose
    from ocrdet.train.run import fit

    best = fit(compose(args.overrides))
    print(f"best checkpoint: {best}")


def cmd_config(args: argparse.Namespace) -> None:
    from ocrdet.train.config import compose
    from ocrdet.train.help import config_yaml

    print(config_yaml(compose(args.overrides)), end="")


def cmd_prepare(args: argparse.Namespace) -> None:
    from ocrdet.data.config import compose_data
    from ocrdet.data.pipeline import ensure_data, open_source

    config, ignored = compose_data(args.overrides)
    if ignored:
        print(f"ocrdet prepare: not data settings, ignored: {' '.join(ignored)}", file=sys.stderr)
    if args.verify and not config.data.cache:
        raise SystemExit("ocrdet prepare: --verify checks a prepared cache; data.cache=false uses none")
    root = ensure_data(config.data.root, config.synth)
    for train in (True, False):
        split = config.data.split(train)
        source = open_source(root, split, config.data, train=train)
        if args.verify and not cache_is_intact(source.path):
            shutil.rmtree(source.path)
            source = open_source(root, split, config.data, train=train)
        print(source.summary())


def cache_is_intact(path: Path) -> bool:
    """Read every byte of a prepared cache; print whether every image matches its checksum, or which do not."""
    from ocrdet.data.sources.cache import verify_cache

    bad = verify_cache(path)
    if not bad:
        print(f"{path}: every image matches its checksum")
        return True
    shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    mismatch = "does not match its checksum" if len(bad) == 1 else "do not match their checksums"
    print(f"{path}: {count(len(bad), 'image')} {mismatch} ({shown}); rebuilding")
    return False


def cmd_predict(args: argparse.Namespace) -> None:
    from ocrdet.data.io.predictions import write_predictions
    from ocrdet.infer import Detector

    chosen = (("thresh", args.thresh), ("box_thresh", args.box_thresh), ("unclip_ratio", args.unclip_ratio))
    overrides = {k: v for k, v in chosen if v is not None}
    scale = {"eval_size": args.eval_size, "max_side": args.max_side}
    given = [args.checkpoint] if args.checkpoint else []
    if not (args.onnx or given):
        raise SystemExit("ocrdet predict: give a checkpoint before the images, or --onnx MODEL.onnx")
    overlay, maps = (Path(p) if p else None for p in (args.overlay, args.save_maps))
    check_predict_outputs(Path(args.out), overlay, maps)
    paths = _image_paths([*given, *args.images] if args.onnx else args.images)  # --onnx: every positional is an image
    check_distinct_names(paths)
    if args.onnx:
        detector = Detector.from_onnx(args.onnx, device=args.device, **scale, **overrides)
    else:
        detector = Detector.from_checkpoint(args.checkpoint, device=args.device, **scale, **overrides)
    failed: list[ImageDecodeError] = []
    predictions = detector.detect_files(
        paths, overlay, maps, on_error=lambda exc: _report_bad_image(exc, failed), overlay_scale=args.overlay_scale
    )
    write_predictions(predictions, args.out)
    n = sum(len(p) for p in predictions.values())
    print(
        f"{count(n, 'polygon')} in {count(len(predictions), 'image')} -> {args.out}"
        + (f"; overlays in {args.overlay}" if args.overlay else "")
    )
    if failed:
        raise SystemExit(f"ocrdet predict: {len(failed)} of {count(len(paths), 'image')} could not be read")


def cmd_tune(args: argparse.Namespace) -> None:
    from ocrdet.data.io.format import load_annotations, split_paths
    from ocrdet.eval.evaluate import ground_truth
    from ocrdet.eval.tune import DEFAULT_GRIDS, TUNED_KEY, detector_maps, format_tune, store_postprocess, tune
    from ocrdet.infer import Detector

    image_dir, gt_path = split_paths(args.data, args.split)
    gts = ground_truth(load_annotations(gt_path))
    detector = Detector.from_checkpoint(args.checkpoint, device=args.device, eval_size=args.eval_size)
    saved = detector_maps(detector, [image_dir / name for name in gts])
    result = tune(saved, gts, detector.postprocess, args.sweep or DEFAULT_GRIDS, args.metric)
    print(format_tune(result, detector.postprocess))
    record = {"data": str(args.data), "split": args.split, "metric": args.metric, "hmean": result.hmean}
    store_postprocess(args.checkpoint, result.config, record)
    print(f"stored in {args.checkpoint} ({TUNED_KEY}: {record}); predict and export use these values")


def _report_bad_image(exc: ImageDecodeError, failed: list[ImageDecodeError]) -> None:
    """One ``error <file>: <reason>`` line on stderr (above the progress bar); remember the failure."""
    from tqdm import tqdm

    tqdm.write(f"error {exc}", file=sys.stderr)
    failed.append(exc)


def cmd_export(args: argparse.Namespace) -> None:
    from ocrdet.infer import load_checkpoint
    from ocrdet.model.export import export_checked, format_check

    model, postprocess, size = load_checkpoint(args.checkpoint)
    if not args.int8:
        if args.calibrate:
            raise SystemExit("ocrdet export: --calibrate only goes with --int8")
        print(format_check(export_checked(model, postprocess, size, args.onnx)))
        return
    import tempfile

    from ocrdet.model.quantize import export_int8, format_int8

    if not args.calibrate:
        raise SystemExit("ocrdet export --int8: give --calibrate DATA_ROOT (real images in DATA_ROOT/images/train)")
    with tempfile.TemporaryDirectory(prefix="ocrdet-export-") as tmp:
        fp32 = export_checked(model, postprocess, size, Path(tmp) / "fp32.onnx")
        print(format_check(fp32).replace(str(fp32.path), "the fp32 model"))
        print(format_int8(export_int8(fp32.path, Path(args.onnx), args.calibrate, size)))


def cmd_evaluate(args: argparse.Namespace) -> None:
    import warnings

    warnings.simplefilter("always")
    warnings.showwarning = lambda message, category, *_rest: print(f"warning: {message}", file=sys.stderr)
    if args.sweep:
        from ocrdet.eval.sweep import format_sweep, run_sweep

        result = run_sweep(args.gt, args.pred, args.sweep, args.plot, metric=args.metric)
        print(format_sweep(result))
        print(f"plot: {args.plot}")
        return
    from ocrdet.eval.evaluate import evaluate_files, format_table

    result = evaluate_files(args.gt, args.pred, metric=args.metric)
    if args.json == "-":
        _write_json(result.to_json(), None)
        return
    print(format_table(result))
    if args.json:
        _write_json(result.to_json(), Path(args.json))
        print(f"json: {args.json}")
    if args.by_height:
        from ocrdet.eval.by_height import evaluate_by_height, format_by_height

        print(format_by_height(evaluate_by_height(args.gt, args.pred, args.by_height, args.height_side)))
    if args.overlay:
        from ocrdet.overlay import write_evaluation_overlays

        count = write_evaluation_overlays(args.gt, args.pred, Path(args.overlay), args.images, args.overlay_scale)
        print(
            f"{count} overlays in {args.overlay} (ground truth: matched green, missed orange, don't care grey;"
            " detections: matched blue, false positive red)"
        )


def _write_json(data: object, path: Path | None) -> None:
    """Full-precision JSON to ``path`` (atomically), or to stdout for None (orjson: float64 as the shortest text
    that reads back to the same number, as ``json``, about 10x faster on a few thousand per-image entries)."""
    import orjson

    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()
    if path is None:
        print(text)
    else:
        from ocrdet.atomic import atomic_write_text

        atomic_write_text(path, text + "\n")


def cmd_demo(args: argparse.Namespace) -> None:
    from ocrdet.data.io.format import split_paths
    from ocrdet.data.io.predictions import write_predictions
    from ocrdet.eval.evaluate import evaluate_files, format_table
    from ocrdet.infer import Detector
    from ocrdet.train.config import compose
    from ocrdet.train.run import fit

    out = Path(args.out)
    config = compose(["experiment=demo", f"data.root={out / 'data'}", f"run_dir={out / 'run'}", *args.overrides])
    best = fit(config)
    image_dir, gt_path = split_paths(config.data.root, config.data.val_split)
    detector = Detector.from_checkpoint(best)
    predictions = detector.detect_files(_image_paths([str(image_dir)]), out / "overlays")
    write_predictions(predictions, out / "predictions.csv")
    print(format_table(evaluate_files(gt_path, out / "predictions.csv")))
    print(f"checkpoint: {best}\npredictions: {out / 'predictions.csv'}\noverlays: {out / 'overlays'}/")
    print(f"training curves: {out / 'run' / 'logs'} (CSV) and {out / 'run' / 'tb'} (TensorBoard)")
    cache = Path(config.data.cache_dir)
    print(f"decoded-image cache: {cache.absolute()}/ ({folder_mib(cache):.0f} MiB; delete it to free the space)")
    print("next:")
    print(f"  ocrdet serve --run {out / 'run'}    # browse the data, the evaluation and the curves; upload images")
    print(f"  ocrdet predict {best} YOUR_IMAGES/ --out preds.csv --overlay overlays/")


def folder_mib(folder: Path) -> float:
    """Size of the files under ``folder`` in MiB (0 when it does not exist)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def cmd_bench(args: argparse.Namespace) -> None:
    if args.what in ("suite", "compare"):
        return _bench_suite(args)
    if args.files:
        raise SystemExit(f"ocrdet bench {args.what}: unexpected arguments {args.files}")
    root, plot = Path(args.data) if args.data else None, Path(args.plot) if args.plot else None
    sized = {"size": args.size} if args.size else {}
    if args.what == "data":
        from ocrdet.bench.common import format_table
        from ocrdet.bench.data_bench import bench_data

        workers = {} if args.workers is None else {"workers": args.workers}
        rows = bench_data(
            root, args.split or "train", args.n, batch_size=args.batch_size, plot=plot, **sized, **workers
        )
        print(format_table(rows))
    elif args.what == "val":
        from ocrdet.bench.val_bench import bench_val, bottleneck, format_result

        checkpoint = Path(args.checkpoint) if args.checkpoint else None
        split = args.split or "val"
        result = bench_val(
            root, split, args.n, batch_size=args.batch_size, plot=plot, checkpoint=checkpoint, maps=args.maps, **sized
        )
        print(format_result(result))
        print(bottleneck(result))
    elif args.what == "train":
        from ocrdet.bench.train_bench import bench_train, bottleneck
        from ocrdet.bench.train_bench import format_table as format_train_table

        if args.workers == "auto":
            raise SystemExit("ocrdet bench train: give --workers a count (auto is for `bench data` and training)")
        given = {"device": args.device, "steps": args.steps, "backbone": args.backbone, "workers": args.workers}
        given["precisions"] = args.precision
        chosen = {k: v for k, v in given.items() if v is not None}
        rows = bench_train(batch_size=args.batch_size, **sized, **chosen)
        print(format_train_table(rows))
        print(bottleneck(rows))
    elif args.what == "eval":
        from ocrdet.bench.common import plot_rows
        from ocrdet.bench.eval_bench import bench_eval, bench_json, format_bench

        result = bench_eval(args.data)
        print(format_bench(result))
        if plot:
            plot_rows(result.rows, plot, unit="run")
        if args.json:
            _write_json(bench_json(result), None if args.json == "-" else Path(args.json))
    if args.plot:
        print(f"plot: {args.plot}")


def _bench_suite(args: argparse.Namespace) -> None:
    if args.what == "compare":
        from ocrdet.bench.compare import compare, format_changes
        from ocrdet.bench.suite import read_result

        if len(args.files) != 2:
            raise SystemExit("ocrdet bench compare: give OLD.json NEW.json (two `ocrdet bench suite` results)")
        old, new = (read_result(f) for f in args.files)
        changes = compare(old, new, args.threshold)
        print(format_changes(changes, old, new, args.threshold))
        if any(c.regression for c in changes):
            raise SystemExit(1)
        return
    from ocrdet.bench.suite import format_suite, run_suite

    if args.files or not args.json:
        raise SystemExit("ocrdet bench suite: give --json RESULTS.json (and --plot RESULTS.png), no positionals")
    result = run_suite(args.device or "cpu", args.quick, Path(args.json), Path(args.plot) if args.plot else None)
    print(format_suite(result))
    print(f"results: {args.json}" + (f", plot: {args.plot}" if args.plot else ""))
    if result.errors:
        raise SystemExit(f"ocrdet bench suite: {len(result.errors)} bench(es) failed: {', '.join(result.errors)}")


def cmd_profile(args: argparse.Namespace) -> None:
    from ocrdet.data.config import CACHE_LONG_SIDE
    from ocrdet.data.sources.folder import FolderSource
    from ocrdet.data.transforms.augment import AugmentConfig
    from ocrdet.data.transforms.profile import profile_transforms

    source = FolderSource(args.data, args.split, long_side=args.long_side or CACHE_LONG_SIDE)
    if args.what == "text-size":
        _profile_text_size(args, source)
        return
    samples = [(s.image, s.polygons, s.ignore) for s in map(source.get, range(min(len(source), 16)))]
    rows = profile_transforms(samples, args.n, AugmentConfig(size=args.size) if args.size else AugmentConfig())
    print(f"{'stage':<10}{'mean ms':>10}{'median ms':>11}{'p95 ms':>9}")
    for row in rows:
        print(f"{row.stage:<10}{row.mean_ms:>10.2f}{row.median_ms:>11.2f}{row.p95_ms:>9.2f}")


def _profile_text_size(args: argparse.Namespace, source: object) -> None:
    import numpy as np

    from ocrdet.data.transforms.augment import AugmentConfig
    from ocrdet.data.transforms.maps import TargetConfig
    from ocrdet.data.transforms.text_size import thin_fraction

    given = {"size": args.size, "scale": tuple(args.scale) if args.scale else None}
    augment = AugmentConfig(**{k: v for k, v in given.items() if v is not None})
    targets = TargetConfig(min_text_size=args.min_text_size) if args.min_text_size is not None else TargetConfig()
    samples = [source.get(i) for i in range(min(len(source), args.n))]
    share = thin_fraction(samples, augment, targets, np.random.default_rng(0))
    print(
        f"{share:.1%} of the text lines in training crops (size {augment.size}, zoom {augment.scale}) are thinner"
        f" than min_text_size {targets.min_text_size:g} px and so don't care ({len(samples)} images, 4 crops each)"
    )


def cmd_serve(args: argparse.Namespace) -> None:
    from ocrdet.serve.app import serve

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    run, data, pred, checkpoint = path(args.run), path(args.data), path(args.pred), path(args.checkpoint)
    serve(run, data, args.split, pred, checkpoint, args.host, args.port, args.allowed_host)


def cmd_shard(args: argparse.Namespace) -> None:
    from ocrdet.data.sources.shards import parse_size, write_shards

    counts = write_shards(Path(args.root), args.split, Path(args.out), parse_size(args.shard_size), args.workers)
    print(
        f"{sum(counts.values())} samples in {len(counts)} shards -> {args.out} (index: {Path(args.out) / 'index.json'})"
    )


def cmd_check(args: argparse.Namespace) -> None:
    from ocrdet.data.check import check_command

    raise SystemExit(check_command(Path(args.data), args.split, args.workers))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default (when it has one and the text does not already say it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


class ConfigHelp(argparse.Action):
    """``-h`` of ``train`` and ``prepare``: the usage, then the config groups and keys (composed only when asked)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args) -> None:
        from ocrdet.train.help import config_help

        parser.epilog = config_help()
        parser.print_help()
        parser.exit()


def port(value: str) -> int:
    """A TCP port number for ``--port``."""
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return int(value)


def _count_or_auto(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers or 'auto', got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocrdet", description=__doc__, formatter_class=HelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    chatter = "also show library chatter: Lightning's info and tips, warnings"
    # SUPPRESS: a subcommand's own default must not undo the ``ocrdet -v COMMAND`` given before it
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=chatter)
    parser.add_argument("-v", "--verbose", action="store_true", help=chatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str, config_overrides: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=text, description=text, parents=[common], formatter_class=HelpFormatter, add_help=False
        )
        p.add_argument(
            "-h", "--help", action=ConfigHelp if config_overrides else "help", help="show this help and exit"
        )
        return p

    p = command("synth", "write a synthetic receipt data set (ROOT/images/<split>, ROOT/jsons)")
    p.add_argument("--out", required=True, help="the data set ROOT to create: a new or empty folder")
    p.add_argument("--train", type=int, default=200, help="training receipts")
    p.add_argument("--val", type=int, default=50, help="validation receipts")
    p.add_argument("--test", type=int, default=0, help="test receipts")
    p.add_argument("--seed", type=int, default=0, help="same seed, same receipts")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier synthetic set in --out (never annotations or images that synth did not write)",
    )
    p.add_argument("--level", choices=["word", "line"], default="word", help="a box per word or per line (SROIE)")
    p.add_argument(
        "--preset",
        choices=["plain", "receipts"],
        default="plain",
        help="the look: receipts adds faint ink, blur, JPEG, clutter, page scans",
    )
    p.set_defaults(func=cmd_synth)

    p = command("holdout", "hold images of a split out as a new split (e.g. tune), in a new ROOT of links")
    p.add_argument("root", help="a data set ROOT (never written)")
    p.add_argument("--out", required=True, help="the new data set ROOT: a new or empty folder")
    p.add_argument("--count", type=int, required=True, help="how many images to hold out")
    p.add_argument("--from", dest="source", default="train", help="the split they leave")
    p.add_argument("--as", dest="held", default="tune", help="the new split's name")
    p.add_argument("--seed", type=int, default=0, help="same seed, same images")
    p.set_defaults(func=cmd_holdout)

    p = command("train", "train and validate; Hydra overrides, e.g. data=synth trainer.max_epochs=3", True)
    p.add_argument("overrides", nargs="*", help="KEY=VALUE and GROUP=OPTION (listed below)")
    p.set_defaults(func=cmd_train)

    p = command("config", "show the composed training config (`ocrdet config show [overrides]`)")
    p.add_argument("what", choices=["show"], help="show: print every key with its value, as YAML")
    p.add_argument("overrides", nargs="*", help="the overrides you would give `ocrdet train`")
    p.set_defaults(func=cmd_config)

    p = command("check", "list every problem of a data set (file, word, reason); exit status 1 if any")
    p.add_argument("data", help="a data set ROOT")
    p.add_argument("--split", action="append", default=[], help="repeatable; default: every jsons/*.json")
    p.add_argument("--workers", type=int, help="processes decoding images (default: all cores)")
    p.set_defaults(func=cmd_check)

    p = command("prepare", "decode once into the shared cache that training reads (the data overrides of train)", True)
    p.add_argument(
        "overrides", nargs="*", help="KEY=VALUE and GROUP=OPTION, as for `ocrdet train` (only data.*, synth.* used)"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="read every byte of the caches, list the images that do not match their checksums and rebuild",
    )
    p.set_defaults(func=cmd_prepare)

    p = command("predict", "detect text in images; writes CSV or JSON (by suffix) and overlays")
    p.add_argument("checkpoint", nargs="?", help="a training checkpoint (.ckpt); left out with --onnx")
    p.add_argument(
        "images",
        nargs="+",
        help="image files or folders; two inputs may not share a file name (predictions are keyed by it)",
    )
    p.add_argument("--out", required=True, help="preds.csv or preds.json (checked before the model loads)")
    p.add_argument("--overlay", help="folder for PNG overlays, <image stem>.png (default: none written)")
    p.add_argument("--overlay-scale", type=float, default=1.0, help="overlay size / image size")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--eval-size", "--size", type=int, help="letterbox side fed to the model (default: the model's data.eval_size)"
    )
    p.add_argument(
        "--max-side",
        type=int,
        help="turn on the scale picker: pages whose text is small at --size run again at up to this side"
        " (default: off)",
    )
    p.add_argument("--thresh", type=float, help="binary threshold of the probability map (default: the checkpoint's)")
    p.add_argument("--box-thresh", type=float, help="post-processing threshold (default: the checkpoint's)")
    p.add_argument("--unclip-ratio", type=float, help="polygon expansion (default: the checkpoint's)")
    p.add_argument("--save-maps", help="also write the probability maps (.npz) for `evaluate --sweep` (default: no)")
    p.add_argument("--onnx", help="run this `ocrdet export` file with onnxruntime instead of a checkpoint")
    p.set_defaults(func=cmd_predict)

    p = command("tune", "choose post-processing on a data split and store it in the checkpoint")
    p.add_argument("checkpoint", help="a training checkpoint (.ckpt), rewritten with the chosen values")
    p.add_argument("--data", required=True, help="a data set ROOT")
    p.add_argument("--split", required=True, help="a split you do not report results on (e.g. a held-out tune)")
    p.add_argument("--eval-size", "--size", type=int, help="letterbox side (default: the model's data.eval_size)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--metric", choices=["hmean", "cleval"], default="hmean", help="what to maximise")
    p.add_argument(
        "--sweep",
        action="append",
        help="repeatable PARAM=START:STOP:STEP, tuned in order"
        " (default: thresh=0.2:0.5:0.05 box_thresh=0.3:0.8:0.05 unclip_ratio=1.2:2.4:0.1)",
    )
    p.set_defaults(func=cmd_tune)

    p = command("export", "export a checkpoint to ONNX (onnxruntime), checked against PyTorch")
    p.add_argument("checkpoint", help="a training checkpoint (.ckpt)")
    p.add_argument("--onnx", required=True, help="the .onnx file to write")
    p.add_argument("--int8", action="store_true", help="write an INT8 model (onnxruntime static quantization)")
    p.add_argument(
        "--calibrate",
        help="--int8: a data set ROOT; calibrated on its images/train, H-mean checked on its val split if any",
    )
    p.set_defaults(func=cmd_export)

    p = command("evaluate", "precision / recall / H-mean of predictions against ground truth")
    p.add_argument("gt", help="ground-truth JSON")
    p.add_argument("pred", help="predictions (.csv or .json), or with --sweep the maps from `predict --save-maps`")
    p.add_argument("--metric", choices=["hmean", "cleval"], default="hmean", help="the protocol")
    p.add_argument("--sweep", help="post-processing sweep over saved maps, e.g. box_thresh=0.3:0.9:0.05")
    p.add_argument("--plot", default="sweep.png", help="PNG of the sweep")
    p.add_argument("--json", metavar="OUT.json", help="also write every figure at full precision (- for stdout only)")
    p.add_argument("--overlay", help="folder for PNGs: ground truth and predictions coloured by match state")
    p.add_argument("--images", help="the images of --overlay (default: ROOT/images/<split> beside the GT JSON)")
    p.add_argument("--overlay-scale", type=float, default=1.0, help="overlay size / image size")
    p.add_argument(
        "--by-height", type=float, nargs="+", help="also H-mean by text height: bucket edges in px (default: off)"
    )
    p.add_argument(
        "--height-side",
        type=int,
        help="measure --by-height heights with the image's long side at this size"
        " (e.g. the model's data.eval_size; default: the image's own pixels)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = command("bench", "speed, baseline vs ours in one run: data, validation epoch, evaluation, training; suite")
    p.add_argument(
        "what", choices=["data", "val", "eval", "train", "suite", "compare"], help="which pipeline to time, or all"
    )
    p.add_argument("files", nargs="*", help="compare: OLD.json NEW.json (two `bench suite --json` results)")
    p.add_argument("--quick", action="store_true", help="suite: small sizes (cpu: a dry run; cuda: under 8 min)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.10,
        help="compare: fail when a row gets worse by more than this fraction (default: 0.1)",
    )
    p.add_argument(
        "--data",
        help="data, val: a data set ROOT (default: synthetic receipts); eval: a GT JSON (default: 404 synthetic)",
    )
    p.add_argument("--split", help="data, val: split of --data (default: train for data, val for val)")
    p.add_argument("--n", type=int, default=64, help="samples")
    p.add_argument("--size", type=int, help="data, train: the crop (default: data.augment.size); val: data.eval_size")
    p.add_argument("--batch-size", type=int, default=8, help="samples per batch")
    p.add_argument("--plot", help="PNG chart of the table (default: none)")
    p.add_argument(
        "--json",
        metavar="OUT.json",
        help="eval: the table at full precision as JSON (- for stdout); suite: every row and the machine's facts",
    )
    p.add_argument("--device", help="train: cpu, cuda or auto (default: auto); suite: cpu or cuda (default: cpu)")
    p.add_argument("--steps", type=int, help="train: timed training steps (default 20, after 3 warm-up steps)")
    p.add_argument("--backbone", help="train: timm backbone (default: the model's, resnet18)")
    p.add_argument("--precision", nargs="+", help="train: one row each (default: 32-true bf16-mixed)")
    p.add_argument(
        "--workers",
        type=_count_or_auto,
        help="data: DataLoader workers of the loader rows, or auto (measure 0..cores, print the table; default 2); "
        "train: DataLoader workers (default: data.num_workers)",
    )
    p.add_argument("--checkpoint", help="val: weights for both pipelines (default: a random DBNet, see --maps)")
    p.add_argument(
        "--maps",
        choices=["auto", "model", "target"],
        default="auto",
        help="val: post-process the model's maps or the ground-truth ones (auto: the model's with --checkpoint)",
    )
    p.set_defaults(func=cmd_bench)

    p = command("profile", "transforms: per-transform timing table; text-size: share of text too thin to be learned")
    p.add_argument("what", choices=["transforms", "text-size"], help="what to profile")
    p.add_argument("--data", required=True, help="a data set ROOT")
    p.add_argument("--split", default="train", help="split of --data")
    p.add_argument("--n", type=int, default=100, help="samples timed")
    p.add_argument("--size", type=int, help="the crop (default: data.augment.size)")
    p.add_argument("--long-side", type=int, help="images are first shrunk to this long side (default: data's)")
    p.add_argument(
        "--scale", type=float, nargs=2, help="text-size: crop zoom range LOW HIGH (default: data.augment.scale)"
    )
    p.add_argument(
        "--min-text-size", type=float, help="text-size: lines thinner are don't care (default: data.targets')"
    )
    p.set_defaults(func=cmd_profile)

    p = command("serve", "local web app: data browser, evaluation viewer, inference, run page")
    p.add_argument("--run", help="a training run folder (curves, bench tables, its checkpoint and data)")
    p.add_argument("--data", help="a data set ROOT (default: the one the run trained on)")
    p.add_argument("--split", help="split of --data (default: the run's validation split, else val)")
    p.add_argument("--pred", help="predictions (.csv/.json) for the evaluation viewer")
    p.add_argument("--checkpoint", help="model for inference and evaluation (default: the run's best)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind; anything but loopback lets other machines read your data"
    )
    p.add_argument("--port", type=port, default=8000, help="TCP port")
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="another name the browser may use for this server (repeatable; loopback names always work)",
    )
    p.set_defaults(func=cmd_serve)

    p = command("shard", "write WebDataset shards (upright images + annotation JSON) for streaming")
    p.add_argument("root", help="a data set ROOT")
    p.add_argument("--split", default="train", help="split of ROOT")
    p.add_argument("--out", required=True, help="folder for the shards and index.json")
    p.add_argument("--shard-size", default="500MB", help="e.g. 500MB, 1GB")
    p.add_argument("--workers", type=int, help="processes (default: all cores)")
    p.set_defaults(func=cmd_shard)

    p = command("demo", "synthetic receipts -> train a few minutes on CPU -> predict -> evaluate")
    p.add_argument("--out", default="demo", help="folder for everything the demo writes")
    p.add_argument("overrides", nargs="*", help="Hydra overrides on top of experiment=demo")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    """The ``ocrdet`` command; with ``argv`` given (tests, scripts) it runs in this process as it is."""
    if argv is None and sys.argv[1:2] != ["evaluate"]:  # evaluating allocates little: no second interpreter start
        from ocrdet.allocator import maybe_reexec_with_tcmalloc

        maybe_reexec_with_tcmalloc()
    args = build_parser().parse_args(argv)
    if not args.verbose:
        from ocrdet.verbosity import quiet

        quiet()
    try:
        args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        if not type(exc).__module__.startswith("ocrdet.") and not isinstance(exc, FileNotFoundError):
            raise
        raise SystemExit(f"ocrdet: {exc}") from None
    except OSError as exc:
        if exc.errno not in OS_ERROR_ADVICE:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        raise SystemExit(f"ocrdet: {where}{exc.strerror}; {OS_ERROR_ADVICE[exc.errno]}") from None


if __name__ == "__main__":
    main()
