"""The JSON API behind the pages, through FastAPI's test client."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import simplejpeg
from serve_client import local_client

import ocrdet.serve.app
from ocrdet.data.io.decode import decode_image
from ocrdet.data.io.format import load_annotations, split_paths
from ocrdet.eval.iou_hmean import match_image
from ocrdet.serve.app import open_workspace
from ocrdet.serve.views import VIEW_LONG_SIDE

SPLIT = "val"  # the split of the ``client`` fixture


def annotations(root: Path):
    return load_annotations(split_paths(root, SPLIT)[1]).images


def test_data_lists_images_with_word_counts(client, synth_root):
    body = client.get("/api/data").json()
    expected = annotations(synth_root)
    assert [image["name"] for image in body["images"]] == list(expected)
    for image in body["images"]:
        _, ignore = expected[image["name"]].polygons()
        assert (image["words"], image["dont_care"]) == (int((~ignore).sum()), int(ignore.sum()))
    assert body["problems"] == [] and body["on_disk"] == 4


def test_image_is_upright_and_polygons_follow_it(client, synth_root):
    name = "val_00002.jpg"  # stored with EXIF orientation 6: the pixels must be turned a quarter
    path = split_paths(synth_root, SPLIT)[0] / name
    decoded = decode_image(path, min_long_side=VIEW_LONG_SIDE)
    assert decoded.orientation == 6
    body = client.get(f"/api/data/{name}").json()
    pixels = simplejpeg.decode_jpeg(client.get(body["image"]).content)
    assert pixels.shape[:2] == (body["height"], body["width"]) == decoded.image.shape[:2]
    assert (body["width"], body["height"]) == decoded.stored_size[::-1]
    polygons, ignore = annotations(synth_root)[name].polygons()
    assert body["ignore"] == ignore.tolist()
    for got, stored in zip(body["polygons"], polygons, strict=True):
        np.testing.assert_allclose(got, decoded.to_image(stored), atol=0.051)
    drawn = np.concatenate([np.asarray(p) for p in body["polygons"]])
    assert drawn.min() >= -2 and (drawn.max(axis=0) <= [body["width"] + 2, body["height"] + 2]).all()


def test_unknown_image_is_a_clear_404(client):
    for url in ("/api/data/nope.jpg", "/api/image/nope.jpg", "/api/image/..%2Fjsons%2Fval.json"):
        response = client.get(url)
        assert response.status_code == 404
        assert "no " in response.json()["detail"]


def test_evaluation_is_sorted_worst_first_and_states_match_the_counts(client, synth_root, predictions_file):
    body = client.get("/api/eval", params={"source": "predictions"}).json()
    hmeans = [image["hmean"] for image in body["images"]]
    assert hmeans == sorted(hmeans) and hmeans[-1] == 1.0 and hmeans[0] == 0.0
    gts = annotations(synth_root)
    with open(predictions_file, newline="") as f:
        detected = {row["filename"]: row["polygons"] for row in csv.DictReader(f)}
    states = set()
    for image in body["images"]:
        item = client.get(f"/api/eval/{image['name']}", params={"source": "predictions"}).json()
        polys, ignore = gts[image["name"]].polygons()
        dets = [np.array(c.split(), dtype=float).reshape(-1, 2) for c in detected[image["name"]].split("|") if c]
        counts = match_image(polys, ignore, dets)
        gt_states = [g["state"] for g in item["gt"]]
        det_states = [d["state"] for d in item["det"]]
        assert gt_states.count("matched") == det_states.count("matched") == counts.matched == image["matched"]
        assert len(gt_states) - gt_states.count("ignore") == counts.gt_care
        assert len(det_states) - det_states.count("ignore") == counts.det_care
        assert [s == "ignore" for s in gt_states] == ignore.tolist()
        states |= set(gt_states) | set(det_states)
    assert states >= {"matched", "missed", "false_positive", "ignore"}
    assert body["summary"]["matched"] == sum(image["matched"] for image in body["images"])


def test_evaluation_of_the_checkpoint_runs_the_model(client):
    body = client.get("/api/eval", params={"source": "checkpoint"}).json()
    assert len(body["images"]) == 4
    assert body["summary"]["det_care"] >= 4  # thresholds 0: the untrained model finds a region in every image


def test_detect_upload_returns_polygons_and_downloads(client, synth_root):
    name = "val_00001.jpg"  # EXIF orientation 8
    data = (split_paths(synth_root, SPLIT)[0] / name).read_bytes()
    body = client.post("/api/detect", files={"file": (name, data, "image/jpeg")}).json()
    assert body["polygons"] and len(body["scores"]) == len(body["polygons"])
    assert body["image"].startswith("data:image/jpeg;base64,")
    rows = list(csv.reader(io.StringIO(body["csv"])))
    assert rows[0] == ["filename", "polygons"] and rows[1][0] == name
    assert len(rows[1][1].split("|")) == len(body["polygons"])
    assert len(json.loads(body["json"])["images"][name]["words"]) == len(body["polygons"])
    picked = client.get(f"/api/detect/{name}").json()
    assert picked["polygons"] == body["polygons"] and picked["csv"] == body["csv"]


@pytest.mark.parametrize("shape", [(12000, 10, 3), (10, 12000, 3)])
def test_a_sliver_image_is_detected_like_any_other(client, shape):
    png = cv2.imencode(".png", np.full(shape, 200, np.uint8))[1].tobytes()
    response = client.post("/api/detect", files={"file": ("sliver.png", png, "image/png")})
    assert response.status_code == 200 and response.json()["name"] == "sliver.png"


@pytest.mark.parametrize(
    ("filename", "payload", "status", "words"),
    [
        ("notes.txt", b"hello, not an image", 400, "notes.txt: not an image that can be read"),
        ("empty.jpg", b"", 400, "empty file"),
        ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, 400, "broken.jpg: not an image"),
    ],
)
def test_bad_upload_gets_a_clear_message(client, filename, payload, status, words):
    response = client.post("/api/detect", files={"file": (filename, payload)})
    assert response.status_code == status
    assert words in response.json()["detail"] and "BytesIO" not in response.json()["detail"]


def test_huge_image_is_refused(client, bomb_jpeg):
    response = client.post("/api/detect", files={"file": ("bomb.jpg", bomb_jpeg, "image/jpeg")})
    assert response.status_code == 400
    assert "20000x20000 pixels exceeds the limit" in response.json()["detail"]


def test_too_large_upload_is_refused_before_decoding(client, monkeypatch):
    monkeypatch.setattr(ocrdet.serve.app, "MAX_UPLOAD_BYTES", 1000)
    response = client.post("/api/detect", files={"file": ("big.jpg", b"\xff" * 1001)})
    assert response.status_code == 413
    assert "big.jpg: larger than the upload limit" in response.json()["detail"]


def test_run_curves_and_bench(client, run_dir):
    body = client.get("/api/run").json()
    curves = body["curves"]
    assert [p[0] for p in curves["train/loss"]] == [0, 10, 20, 30, 40, 50]  # both log versions, in order
    assert curves["train/loss"][1][1] == pytest.approx(4.5)
    assert curves["val/hmean"] == [[30, pytest.approx(0.1)], [50, pytest.approx(0.2)]]
    assert {p[1] for p in curves["perf/data_wait"]} == {0.25}
    assert len(curves["perf/samples_per_s"]) == 6
    assert "ocrdet          96.0" in body["bench_table"]
    assert client.get(body["bench_chart"]).content == (run_dir / "bench" / "data.png").read_bytes()
    assert client.get("/api/run/bench/other.png").status_code == 404


def test_pages_and_their_scripts_are_served(client):
    for page in ("data", "eval", "infer", "run"):
        html = client.get(f"/{page}").text
        assert f'src="/static/{page}.js"' in html
        assert client.get(f"/static/{page}.js").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/data"


def test_without_sources_each_page_says_what_to_give(tmp_path):
    bare = local_client(open_workspace(None, None, None, None, None))
    assert "--data ROOT" in bare.get("/api/data").json()["detail"]
    assert "--run RUN_DIR" in bare.get("/api/run").json()["detail"]
    assert "--checkpoint" in bare.post("/api/detect", files={"file": ("a.jpg", b"x")}).json()["detail"]
    assert bare.get("/api/eval", params={"source": "predictions"}).status_code == 404


def test_open_workspace_names_what_is_wrong(tmp_path, synth_root, run_dir):
    with pytest.raises(ValueError, match="data .*nowhere: no such file or folder"):
        open_workspace(None, tmp_path / "nowhere", None, None, None)
    with pytest.raises(ValueError, match="--pred needs the ground truth"):
        open_workspace(None, None, None, run_dir / "bench" / "data.txt", None)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.ckpt: not a readable checkpoint"):
        open_workspace(None, synth_root, None, None, tmp_path / "junk.ckpt")
    assert open_workspace(run_dir, synth_root, None, None, None).split == "val"


def test_broken_data_set_gives_messages_not_tracebacks(synth_root, checkpoint, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    image_dir = split_paths(root, SPLIT)[0]
    (image_dir / "val_00000.jpg").unlink()
    (image_dir / "val_00001.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    broken = local_client(open_workspace(None, root, SPLIT, None, checkpoint))
    kinds = {p["name"]: p["kind"] for p in broken.get("/api/data").json()["problems"]}
    assert kinds == {"val_00000.jpg": "missing", "val_00001.jpg": "undecodable"}
    for url, status in (
        ("/api/data/val_00000.jpg", 400),
        ("/api/data/val_00001.jpg", 400),
        ("/api/detect/val_00000.jpg", 404),
        ("/api/detect/val_00001.jpg", 400),
    ):
        response = broken.get(url)
        assert response.status_code == status and response.json()["detail"].count("val_0000") == 1, url
    assert len(broken.get("/api/eval", params={"source": "checkpoint"}).json()["images"]) == 4


def test_a_run_names_its_data_and_model(synth_root, checkpoint, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").symlink_to(checkpoint)
    (tmp_path / "config.json").write_text(json.dumps({"data": {"root": str(synth_root), "val_split": "val"}}))
    workspace = open_workspace(tmp_path, None, None, None, None)
    assert (workspace.data, workspace.split, workspace.sources()) == (synth_root, "val", ["checkpoint"])
