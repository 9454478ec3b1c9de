"""The web app: four static pages (data, evaluation, inference, run) over a small JSON API.

Images are served upright as JPEG; every polygon in a response is already in that image's pixel
frame, and the pages draw them as SVG over the image.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ocrdet.data.io.decode import ImageDecodeError, read_image_bytes
from ocrdet.data.io.format import AnnotationError
from ocrdet.infer import Detector
from ocrdet.serve.runs import RunLogError, latest_bench, read_curves, run_checkpoint, run_data_root
from ocrdet.serve.security import LOOPBACK_HOSTS, allowed_hosts, is_loopback, secure
from ocrdet.serve.workspace import NotAvailable, Workspace

STATIC = Path(__file__).parent / "static"
PAGES = ("data", "eval", "infer", "run")
MAX_UPLOAD_BYTES = 50 * 2**20
"""Uploads larger than this are refused before decoding (decoding also refuses more than MAX_PIXELS)."""


def upload_name(filename: str | None) -> str:
    """The file name an upload is shown and predicted under: the last part of what the browser sent (never a
    path); 400 when that is no file name at all (``.``, ``..``, empty, control characters such as NUL)."""
    name = PurePosixPath((filename or "upload").replace("\\", "/")).name
    if name in ("", ".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise HTTPException(400, f"{filename!r}: not a file name; rename the file and upload it again")
    return name


def create_app(workspace: Workspace, hosts: Iterable[str] = LOOPBACK_HOSTS) -> FastAPI:
    """The app over ``workspace``, answering requests for the host names ``hosts`` only (400 otherwise). Errors
    reach the pages as ``{"detail": message}``: 404 for what is not available, 400 for bad input (undecodable
    image, broken annotations or logs, a file name that is none), 411 / 413 for an upload without a size or too
    large."""
    app = FastAPI(title="ocrdet", docs_url=None, redoc_url=None)
    secure(app, hosts, lambda: MAX_UPLOAD_BYTES)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(NotAvailable)
    def _not_available(request: Request, exc: NotAvailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    def _bad_input(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    for error in (ImageDecodeError, AnnotationError, RunLogError):
        app.add_exception_handler(error, _bad_input)

    @app.get("/")
    def index() -> RedirectResponse:
        return RedirectResponse("/data")

    @app.get("/{page}")
    def page(page: str) -> FileResponse:
        if page not in PAGES:
            raise NotAvailable(f"no page {page!r}; the pages are {', '.join(PAGES)}")
        return FileResponse(STATIC / f"{page}.html")

    @app.get("/api/info")
    def info() -> dict:
        return {
            "data": str(workspace.data) if workspace.data else None,
            "split": workspace.split,
            "run": str(workspace.run) if workspace.run else None,
            "predictions": str(workspace.predictions_path) if workspace.predictions_path else None,
            "sources": workspace.sources(),
        }

    @app.get("/api/data")
    def data() -> dict:
        report = workspace.report()
        images = []
        for name, image in report.annotations.images.items():
            dont_care = sum(word.illegibility for word in image.words.values())
            images.append({"name": name, "words": len(image.words) - dont_care, "dont_care": dont_care})
        return {
            "root": str(workspace.data),
            "split": workspace.split,
            "images": images,
            "on_disk": len(report.on_disk),
            "problems": [vars(p) for p in report.problems],
        }

    @app.get("/api/data/{name:path}")
    def data_image(name: str) -> dict:
        annotation = workspace.report().annotations.images.get(name)
        if annotation is None:
            raise NotAvailable(f"no annotations for {name!r} in split {workspace.split!r}")
        view = workspace.view(name)
        polygons, ignore = annotation.polygons()
        return {
            "name": name,
            "image": f"/api/image/{quote(name)}",
            **view.meta(),
            "polygons": view.points(polygons),
            "ignore": ignore.tolist(),
        }

    @app.get("/api/image/{name:path}")
    def image(name: str) -> Response:
        return Response(workspace.view(name).jpeg, media_type="image/jpeg")

    @app.get("/api/eval")
    def evaluation(source: str) -> dict:
        result = workspace.evaluation(source)
        images = [{"name": name, **figures} for name, figures in result.per_image]
        return {"source": source, "summary": result.summary, "images": images}

    @app.get("/api/eval/{name:path}")
    def evaluation_image(name: str, source: str) -> dict:
        result = workspace.evaluation(source)
        if name not in result.annotations.images:
            raise NotAvailable(f"no annotations for {name!r} in split {workspace.split!r}")
        view = workspace.view(name)
        gt_states, det_states = result.states(name)
        gt_polys, _ = result.annotations.images[name].polygons()
        dets = result.predictions.get(name, [])
        return {
            "name": name,
            "image": f"/api/image/{quote(name)}",
            **view.meta(),
            "figures": dict(result.per_image)[name],
            "gt": [{"points": p, "state": s} for p, s in zip(view.points(gt_polys), gt_states, strict=True)],
            "det": [{"points": p, "state": s} for p, s in zip(view.points(dets), det_states, strict=True)],
        }

    @app.post("/api/detect")
    def detect_upload(file: UploadFile) -> dict:
        name = upload_name(file.filename)
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise HTTPException(413, f"{name}: larger than the upload limit of {MAX_UPLOAD_BYTES // 2**20} MiB")
        return workspace.detect(data, name)

    @app.get("/api/detect/{name:path}")
    def detect_data_image(name: str) -> dict:
        path = workspace.image_path(name)
        if not path.exists():
            raise NotAvailable(f"{name}: listed in the annotations but not on disk")
        return workspace.detect(read_image_bytes(path), name)  # a FIFO, device or too large a file: 400

    @app.get("/api/run")
    def run() -> dict:
        if workspace.run is None:
            raise NotAvailable("no run: start `ocrdet serve` with --run RUN_DIR")
        bench = latest_bench(workspace.run)
        return {
            "run": str(workspace.run),
            "curves": read_curves(workspace.run),
            "bench_table": bench.table.read_text(encoding="utf-8", errors="replace") if bench.table else None,
            "bench_table_name": bench.table.name if bench.table else None,
            "bench_chart": f"/api/run/bench/{quote(bench.chart.name)}" if bench.chart else None,
        }

    @app.get("/api/run/bench/{file}")
    def bench_chart(file: str) -> FileResponse:
        chart = latest_bench(workspace.run).chart if workspace.run else None
        if chart is None or chart.name != file:
            raise NotAvailable(f"no bench chart {file!r}")
        return FileResponse(chart, media_type="image/png")

    return app


def open_workspace(
    run: Path | None, data: Path | None, split: str | None, predictions: Path | None, checkpoint: Path | None
) -> Workspace:
    """Check what was given and load it; every problem is a ValueError (``CheckpointError``, ``AnnotationError``
    included) with a message for the user.

    Without ``data``, a run's ``config.json`` names the data root and its validation split; without
    ``checkpoint``, the run's best (else last) checkpoint is the model.
    """
    for what, path in (("run", run), ("data", data), ("predictions", predictions), ("checkpoint", checkpoint)):
        if path is not None and not path.exists():
            raise ValueError(f"{what} {path}: no such file or folder")
    if run is not None and data is None and (from_run := run_data_root(run)):
        data, split = from_run[0], split or from_run[1]
    if predictions is not None and data is None:
        raise ValueError("--pred needs the ground truth: give --data ROOT too")
    if checkpoint is None and run is not None:
        checkpoint = run_checkpoint(run)
    detector = Detector.from_checkpoint(checkpoint) if checkpoint else None
    return Workspace(data, split or "val", run, predictions, detector)


def serve(
    run: Path | None = None,
    data: Path | None = None,
    split: str | None = None,
    predictions: Path | None = None,
    checkpoint: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    extra_hosts: Iterable[str] = (),
) -> None:
    """``ocrdet serve``: open what was given and serve the app until interrupted."""
    import uvicorn

    try:
        workspace = open_workspace(run, data, split, predictions, checkpoint)
    except ValueError as exc:
        raise SystemExit(f"ocrdet serve: {exc}") from None
    hosts = allowed_hosts(host, extra_hosts)
    if not is_loopback(host):
        print(
            f"ocrdet serve: warning: bound to {host}, so every machine that can reach this one can read the data,"
            f" predictions and run folders given here (no login); answering the host names {', '.join(hosts)}",
            file=sys.stderr,
        )
    print(f"ocrdet serve: http://{host}:{port}/  (data, eval, infer, run pages; Ctrl+C stops)")
    uvicorn.run(create_app(workspace, hosts), host=host, port=port, log_level="warning")
