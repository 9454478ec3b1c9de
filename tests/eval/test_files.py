"""The evaluate inputs: the fast readers accept and refuse exactly what the strict loader does, and bad metric
inputs get errors and warnings that name file, line, image and word."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocrdet.cli import main
from ocrdet.data.io import format as annotation_format
from ocrdet.data.io.format import AnnotationError, DegeneratePolygonWarning
from ocrdet.eval import files
from ocrdet.eval.evaluate import evaluate_files
from ocrdet.eval.files import MetricInputWarning, read_annotation_polygons, read_detections

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def gt_file(tmp_path: Path, images: dict | None = None) -> Path:
    images = images or {"a.jpg": {"words": {"1": {"points": SQUARE, "transcription": "AB"}}}}
    return write(tmp_path / "gt.json", json.dumps({"images": images}))


def test_tolerance_is_the_formats():
    assert files.OUT_OF_IMAGE_TOLERANCE == annotation_format.OUT_OF_IMAGE_TOLERANCE


# --- the fast JSON reader against the strict loader -----------------------------------------------------------

coordinate = st.integers(-3, 20) | st.floats(-3, 20) | st.sampled_from([True, "1", None, float("nan"), 1e400])
point = st.lists(coordinate, min_size=2, max_size=2) | st.lists(coordinate, min_size=1, max_size=3)
word = st.fixed_dictionaries(
    {"points": st.lists(point, min_size=2, max_size=5)},
    optional={
        "illegibility": st.booleans() | st.integers(0, 1),
        "transcription": st.none() | st.text("a{b", max_size=3),
    },
)
image = st.fixed_dictionaries(
    {"words": st.dictionaries(st.sampled_from(["1", "2", "3"]), word, max_size=3)},
    optional={"img_w": st.integers(-1, 30), "img_h": st.integers(-1, 30)},
)
names = st.sampled_from(["a.jpg", "b/c.png", "../up.jpg", "C:/x.jpg", ""])


def render(doc: dict, duplicate: str | None) -> str:
    text = json.dumps(doc)
    if duplicate and doc["images"]:  # list the first image (or its first word) twice
        first = next(iter(doc["images"]))
        entry = json.dumps(doc["images"][first])
        text = text.replace(
            f"{json.dumps(first)}: {entry}", f"{json.dumps(first)}: {entry}, {json.dumps(first)}: {entry}", 1
        )
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images=st.dictionaries(names, image, max_size=3), duplicate=st.none() | st.just("image"), bom=st.booleans())
def test_fast_reader_equals_strict_loader(tmp_path_factory, images, duplicate, bom):
    path = tmp_path_factory.mktemp("gt") / "gt.json"
    write(path, (b"\xef\xbb\xbf" if bom else b"") + render({"images": images}, duplicate).encode())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegeneratePolygonWarning)
        try:
            strict = annotation_format.load_annotations(path)
        except AnnotationError as exc:
            with pytest.raises(AnnotationError) as caught:
                read_annotation_polygons(path)
            assert str(caught.value) == str(exc)
            return
        fast = read_annotation_polygons(path)
    assert list(fast) == list(strict.images)
    for name, (polys, ignore, texts) in fast.items():
        words = list(strict.images[name].words.values())
        assert [p.tolist() for p in polys] == [[list(pt) for pt in w.points] for w in words]
        assert ignore.tolist() == [w.illegibility for w in words] and texts == [w.transcription for w in words]
        assert all(p.dtype == np.float64 for p in polys)


def test_float_coordinates_stay_float64(tmp_path):
    path = gt_file(
        tmp_path, {"a.jpg": {"words": {"1": {"points": [[257.6, 0.1], [300.3, 0], [300, 20], [257.6, 20]]}}}}
    )
    assert read_annotation_polygons(path)["a.jpg"][0][0][0, 0] == 257.6


# --- bad metric inputs (issue 12, item 7) -----------------------------------------------------------------------


def test_duplicate_csv_rows_name_both_lines(tmp_path):
    pred = write(tmp_path / "p.csv", "filename,polygons\na.jpg,0 0 10 0 10 10 0 10\nb.jpg,\na.jpg,0 0 1 0 1 1\n")
    with pytest.raises(AnnotationError, match=r"p\.csv, lines 2 and 4: two rows for image 'a\.jpg'"):
        read_detections(pred)


def test_nan_coordinates_name_file_line_and_image(tmp_path):
    pred = write(tmp_path / "p.csv", "filename,polygons\na.jpg,0 0 10 0 10 10 0 10|0 0 nan 0 1 1\n")
    with pytest.raises(AnnotationError, match=r"p\.csv, line 2 \(a\.jpg\), polygon 1: coordinates must be finite"):
        evaluate_files(gt_file(tmp_path), pred)
    pred = write(tmp_path / "p.csv", "filename,polygons\na.jpg,0 0 inf 0 1 1\n")
    with pytest.raises(AnnotationError, match=r"line 2 \(a\.jpg\), polygon 0"):
        evaluate_files(gt_file(tmp_path), pred)


def test_polygon_cells_longer_than_the_csv_default_limit(tmp_path):
    """131,072 characters is the csv module's default field limit."""
    many = " ".join(f"{x} 0" for x in range(0, 10)) + " " + " ".join(f"{x} 10" for x in range(10, -1, -1))
    cell = "|".join(["0 0 10 0 10 10 0 10"] + [many] * 3000)
    assert len(cell) > 131_072
    pred = write(tmp_path / "p.csv", f"filename,polygons\na.jpg,{cell}\n")
    assert len(read_detections(pred)["a.jpg"]) == 3001


def test_utf8_bom_is_accepted(tmp_path):
    pred = write(tmp_path / "p.csv", b"\xef\xbb\xbffilename,polygons\na.jpg,0 0 10 0 10 10 0 10\n")
    gt = write(tmp_path / "gt.json", b"\xef\xbb\xbf" + gt_file(tmp_path).read_bytes())
    assert evaluate_files(gt, pred).summary["hmean"] == 1.0


def test_empty_or_foreign_prediction_file_warns(tmp_path):
    gt = gt_file(tmp_path)
    for text in ("filename,polygons\n", ""):
        pred = write(tmp_path / "p.csv", text)
        if not text:
            with pytest.raises(AnnotationError, match="header"):
                evaluate_files(gt, pred)
            continue
        with pytest.warns(MetricInputWarning, match="no predictions for any of the 1 ground-truth images"):
            assert evaluate_files(gt, pred).summary["recall"] == 0.0


def test_self_intersecting_ground_truth_warns_naming_image_and_word(tmp_path):
    bow_tie = [[0, 0], [10, 10], [10, 0], [0, 10]]
    gt = gt_file(tmp_path, {"a.jpg": {"words": {"1": {"points": SQUARE}, "w7": {"points": bow_tie}}}})
    pred = write(tmp_path / "p.csv", "filename,polygons\na.jpg,0 0 10 0 10 10 0 10\n")
    with pytest.warns(MetricInputWarning, match=r"image 'a\.jpg', word 'w7' \(Self-intersection"):
        evaluate_files(gt, pred)


# --- machine-readable results (item 5) ------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["hmean", "cleval"])
def test_json_report_has_full_precision_figures(tmp_path, capsys, metric):
    gt = gt_file(
        tmp_path, {"a.jpg": {"words": {"1": {"points": SQUARE}, "2": {"points": [[20, 0], [50, 0], [50, 9], [20, 9]]}}}}
    )
    pred = write(tmp_path / "p.csv", "filename,polygons\na.jpg,0 0 10 0 10 10 0 10|20 0 33 0 33 9 20 9\n")
    out = tmp_path / "r.json"
    main(["evaluate", str(gt), str(pred), "--metric", metric, "--json", str(out)])
    report = json.loads(out.read_text())
    expected = evaluate_files(gt, pred, metric)
    assert report["summary"] == expected.summary and report["metric"] == metric
    assert report["per_image"] == [{"image": "a.jpg", **expected.per_image[0][1]}]
    assert report["ocrdet_version"] and report["settings"] and report["images"] == 1
    capsys.readouterr()
    main(["evaluate", str(gt), str(pred), "--metric", metric, "--json", "-"])
    assert json.loads(capsys.readouterr().out) == report
    if metric == "cleval":
        assert {"mean_precision", "mean_recall", "mean_hmean"} <= report["summary"].keys()
