"""``ocrdet``: one entry point, one subcommand per job. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ocrdet.data.io.decode import IMAGE_SUFFIXES, ImageDecodeError


def _image_paths(items: list[str]) -> list[Path]:
    """Files as given; folders expanded to the images they hold (sorted)."""
    paths: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            paths.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif item.exists():
            paths.append(item)
        else:
            raise SystemExit(f"ocrdet: {item}: no such file or folder")
    return paths


def cmd_synth(args: argparse.Namespace) -> None:
    from ocrdet.data.io.synth import generate_dataset

    counts = generate_dataset(Path(args.out), args.train, args.val, args.test, seed=args.seed)
    print(f"wrote {counts} synthetic receipts to {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from ocrdet.train.config import compose
    from ocrdet.train.run import fit

    best = fit(compose(args.overrides))
    print(f"best checkpoint: {best}")


def cmd_prepare(args: argparse.Namespace) -> None:
    from ocrdet.data.pipeline import ensure_data, open_source
    from ocrdet.train.config import compose

    config = compose(args.overrides)
    root = ensure_data(config.data.root, config.synth)
    for train in (True, False):
        print(open_source(root, config.data.split(train), config.data, train=train).summary())


def cmd_predict(args: argparse.Namespace) -> None:
    from ocrdet.data.io.predictions import write_predictions
    from ocrdet.infer import Detector

    overrides = {k: v for k, v in (("box_thresh", args.box_thresh), ("unclip_ratio", args.unclip_ratio)) if v}
    given = [args.checkpoint] if args.checkpoint else []
    if args.onnx:  # no checkpoint then: every positional is an image
        detector = Detector.from_onnx(args.onnx, device=args.device, **overrides)
        paths = _image_paths([*given, *args.images])
    elif given:
        detector = Detector.from_checkpoint(args.checkpoint, device=args.device, **overrides)
        paths = _image_paths(args.images)
    else:
        raise SystemExit("ocrdet predict: give a checkpoint before the images, or --onnx MODEL.onnx")
    failed: list[ImageDecodeError] = []
    predictions = detector.detect_files(
        paths,
        Path(args.overlay) if args.overlay else None,
        Path(args.save_maps) if args.save_maps else None,
        on_error=lambda exc: _report_bad_image(exc, failed),
    )
    write_predictions(predictions, args.out)
    n = sum(len(p) for p in predictions.values())
    print(
        f"{n} polygons in {len(predictions)} images -> {args.out}"
        + (f"; overlays in {args.overlay}" if args.overlay else "")
    )
    if failed:
        raise SystemExit(f"ocrdet predict: {len(failed)} of {len(paths)} images could not be read")


def _report_bad_image(exc: ImageDecodeError, failed: list[ImageDecodeError]) -> None:
    """One ``error <file>: <reason>`` line on stderr (above the progress bar); remember the failure."""
    from tqdm import tqdm

    tqdm.write(f"error {exc}", file=sys.stderr)
    failed.append(exc)


def cmd_export(args: argparse.Namespace) -> None:
    from ocrdet.infer import load_checkpoint
    from ocrdet.model.export import export_checked, format_check

    model, postprocess, size = load_checkpoint(args.checkpoint)
    print(format_check(export_checked(model, postprocess, size, args.onnx)))


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


def _write_json(data: object, path: Path | None) -> None:
    """Full-precision JSON to ``path`` (atomically), or to stdout for None."""
    import json

    text = json.dumps(data, indent=1)
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


def cmd_bench(args: argparse.Namespace) -> None:
    root, plot = Path(args.data) if args.data else None, Path(args.plot) if args.plot else None
    sized = {"size": args.size} if args.size else {}
    if args.what == "data":
        from ocrdet.bench.common import format_table
        from ocrdet.bench.data_bench import bench_data

        print(
            format_table(
                bench_data(root, args.split or "train", args.n, batch_size=args.batch_size, plot=plot, **sized)
            )
        )
    elif args.what == "val":
        from ocrdet.bench.val_bench import bench_val, format_result

        checkpoint = Path(args.checkpoint) if args.checkpoint else None
        split = args.split or "val"
        result = bench_val(
            root, split, args.n, batch_size=args.batch_size, plot=plot, checkpoint=checkpoint, maps=args.maps, **sized
        )
        print(format_result(result))
    elif args.what == "train":
        from ocrdet.bench.train_bench import bench_train
        from ocrdet.bench.train_bench import format_table as format_train_table

        given = {"device": args.device, "steps": args.steps, "backbone": args.backbone, "workers": args.workers}
        given["precisions"] = args.precision
        chosen = {k: v for k, v in given.items() if v is not None}
        rows = bench_train(batch_size=args.batch_size, **sized, **chosen)
        print(format_train_table(rows))
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


def cmd_profile(args: argparse.Namespace) -> None:
    from ocrdet.data.config import CACHE_LONG_SIDE
    from ocrdet.data.sources.folder import FolderSource
    from ocrdet.data.transforms.augment import AugmentConfig
    from ocrdet.data.transforms.profile import profile_transforms

    source = FolderSource(args.data, args.split, long_side=args.long_side or CACHE_LONG_SIDE)
    samples = [(s.image, s.polygons, s.ignore) for s in map(source.get, range(min(len(source), 16)))]
    rows = profile_transforms(samples, args.n, AugmentConfig(size=args.size) if args.size else AugmentConfig())
    print(f"{'stage':<10}{'mean ms':>10}{'median ms':>11}{'p95 ms':>9}")
    for row in rows:
        print(f"{row.stage:<10}{row.mean_ms:>10.2f}{row.median_ms:>11.2f}{row.p95_ms:>9.2f}")


def cmd_serve(args: argparse.Namespace) -> None:
    from ocrdet.serve.app import serve

    def path(value: str | None) -> Path | None:
        return Path(value) if value else None

    serve(path(args.run), path(args.data), args.split, path(args.pred), path(args.checkpoint), args.host, args.port)


def cmd_shard(args: argparse.Namespace) -> None:
    from ocrdet.data.sources.shards import parse_size, write_shards

    counts = write_shards(Path(args.root), args.split, Path(args.out), parse_size(args.shard_size), args.workers)
    print(
        f"{sum(counts.values())} samples in {len(counts)} shards -> {args.out} (index: {Path(args.out) / 'index.json'})"
    )


def cmd_check(args: argparse.Namespace) -> None:
    from ocrdet.data.check import check_command

    raise SystemExit(check_command(Path(args.data), args.split, args.workers))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocrdet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic receipt data set (ROOT/images/<split>, ROOT/jsons)")
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=200)
    p.add_argument("--val", type=int, default=50)
    p.add_argument("--test", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train and validate; Hydra overrides, e.g. data=synth trainer.max_epochs=3")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("check", help="list every problem of a data set (file, word, reason); exit status 1 if any")
    p.add_argument("data", help="a data set ROOT")
    p.add_argument("--split", action="append", default=[], help="repeatable; default: every jsons/*.json")
    p.add_argument("--workers", type=int, help="processes decoding images (default: all cores)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("prepare", help="decode once into the shared cache that training reads (same overrides)")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("predict", help="detect text in images; writes CSV or JSON (by suffix) and overlays")
    p.add_argument("checkpoint", nargs="?", help="a training checkpoint (.ckpt); left out with --onnx")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="preds.csv or preds.json")
    p.add_argument("--overlay", help="folder for PNG overlays")
    p.add_argument("--device", default="cpu")
    p.add_argument("--box-thresh", type=float)
    p.add_argument("--unclip-ratio", type=float)
    p.add_argument("--save-maps", help="also write the probability maps (.npz) for `evaluate --sweep`")
    p.add_argument("--onnx", help="run this `ocrdet export` file with onnxruntime instead of a checkpoint")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (onnxruntime), checked against PyTorch")
    p.add_argument("checkpoint")
    p.add_argument("--onnx", required=True, help="the .onnx file to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="precision / recall / H-mean of predictions against ground truth")
    p.add_argument("gt", help="ground-truth JSON")
    p.add_argument("pred", help="predictions (.csv or .json), or with --sweep the maps from `predict --save-maps`")
    p.add_argument("--metric", choices=["hmean", "cleval"], default="hmean")
    p.add_argument("--sweep", help="post-processing sweep over saved maps, e.g. box_thresh=0.3:0.9:0.05")
    p.add_argument("--plot", default="sweep.png", help="PNG of the sweep")
    p.add_argument("--json", metavar="OUT.json", help="also write every figure at full precision (- for stdout only)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="speed, baseline vs ours in one run: data, validation epoch, evaluation")
    p.add_argument("what", choices=["data", "val", "eval", "train"])
    p.add_argument(
        "--data",
        help="data, val: a data set ROOT (default: synthetic receipts); eval: a GT JSON (default: 404 synthetic)",
    )
    p.add_argument("--split", help="data, val: split of --data (default: train for data, val for val)")
    p.add_argument("--n", type=int, default=64, help="samples")
    p.add_argument("--size", type=int, help="data, train: the crop (default: data.augment.size); val: data.eval_size")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--plot", help="PNG chart of the table")
    p.add_argument("--json", metavar="OUT.json", help="eval: the table at full precision as JSON (- for stdout)")
    p.add_argument("--device", help="train: cpu, cuda or auto (default: auto)")
    p.add_argument("--steps", type=int, help="train: timed training steps (default 20, after 3 warm-up steps)")
    p.add_argument("--backbone", help="train: timm backbone (default: the model's, resnet18)")
    p.add_argument("--precision", nargs="+", help="train: one row each (default: 32-true bf16-mixed)")
    p.add_argument("--workers", type=int, help="train: DataLoader workers (default: data.num_workers)")
    p.add_argument("--checkpoint", help="val: weights for both pipelines (default: a random DBNet, see --maps)")
    p.add_argument(
        "--maps",
        choices=["auto", "model", "target"],
        default="auto",
        help="val: post-process the model's maps or the ground-truth ones (auto: the model's with --checkpoint)",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("profile", help="per-transform timing table of the training transforms")
    p.add_argument("what", choices=["transforms"])
    p.add_argument("--data", required=True, help="a data set ROOT")
    p.add_argument("--split", default="train")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--size", type=int, help="the crop (default: data.augment.size)")
    p.add_argument("--long-side", type=int, help="images are first shrunk to this long side (default: data's)")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("serve", help="local web app: data browser, evaluation viewer, inference, run page")
    p.add_argument("--run", help="a training run folder (curves, bench tables, its checkpoint and data)")
    p.add_argument("--data", help="a data set ROOT")
    p.add_argument("--split", help="split of --data (default: the run's validation split, else val)")
    p.add_argument("--pred", help="predictions (.csv/.json) for the evaluation viewer")
    p.add_argument("--checkpoint", help="model for inference and evaluation (default: the run's best)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("shard", help="write WebDataset shards (upright images + annotation JSON) for streaming")
    p.add_argument("root", help="a data set ROOT")
    p.add_argument("--split", default="train")
    p.add_argument("--out", required=True)
    p.add_argument("--shard-size", default="500MB", help="e.g. 500MB, 1GB")
    p.add_argument("--workers", type=int, help="processes (default: all cores)")
    p.set_defaults(func=cmd_shard)

    p = sub.add_parser("demo", help="synthetic receipts -> train a few minutes on CPU -> predict -> evaluate")
    p.add_argument("--out", default="demo")
    p.add_argument("overrides", nargs="*", help="Hydra overrides on top of experiment=demo")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    """The ``ocrdet`` command; with ``argv`` given (tests, scripts) it runs in this process as it is."""
    if argv is None and sys.argv[1:2] != ["evaluate"]:  # evaluating allocates little: no second interpreter start
        from ocrdet.allocator import maybe_reexec_with_tcmalloc

        maybe_reexec_with_tcmalloc()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        if not type(exc).__module__.startswith("ocrdet.") and not isinstance(exc, FileNotFoundError):
            raise
        raise SystemExit(f"ocrdet: {exc}") from None


if __name__ == "__main__":
    main()
