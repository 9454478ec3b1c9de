import json

import numpy as np
import pytest

from ocrdet.data.io.format import (
    AnnotationError,
    DegeneratePolygonWarning,
    load_annotations,
    parse_annotations,
    save_annotations,
    validate_annotations,
)
from ocrdet.data.io.predictions import format_csv, from_annotations, parse_csv, read_predictions, write_predictions

SQUARE = [[10, 10], [50, 10], [50, 30], [10, 30]]


def doc(words: dict, **image) -> dict:
    return {"images": {"a.jpg": {"words": words, **image}}}


def test_valid_file_loads(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(doc({"0001": {"points": SQUARE, "illegibility": True}}, img_w=100, img_h=50)))
    ann = load_annotations(path)
    polys, ignore = ann.images["a.jpg"].polygons()
    assert polys[0].dtype == np.float32 and polys[0].shape == (4, 2)
    assert ignore.tolist() == [True]


@pytest.mark.parametrize(
    ("points", "problem"),
    [
        ([[0, 0], [1, 1]], "at least 3 points"),
        ([[0, 0], [float("nan"), 1], [2, 2]], "not finite"),
        ([[0, 0], ["x", 1], [2, 2]], "valid number"),
    ],
)
def test_bad_points_name_file_image_and_word(points, problem):
    with pytest.raises(AnnotationError) as err:
        parse_annotations(doc({"w7": {"points": points}}), source="gt.json")
    message = str(err.value)
    assert "gt.json" in message and "'a.jpg'" in message and "'w7'" in message and problem in message


def test_points_outside_image_are_refused_beyond_tolerance():
    inside = [[-1, 0], [101, 0], [101, 51], [0, 51]]
    parse_annotations(doc({"1": {"points": inside}}, img_w=100, img_h=50))
    with pytest.raises(AnnotationError, match="outside the 100x50 image"):
        parse_annotations(doc({"1": {"points": [[0, 0], [150, 0], [150, 40]]}}, img_w=100, img_h=50))
    with pytest.raises(AnnotationError, match="outside"):
        parse_annotations(doc({"1": {"points": [[-20, 0], [10, 0], [10, 40]]}}, img_w=100, img_h=50))


def test_zero_area_polygons_dropped_with_count():
    words = {"1": {"points": SQUARE}, "2": {"points": [[0, 0], [5, 5], [10, 10]]}, "3": {"points": [[1, 1]] * 4}}
    with pytest.warns(DegeneratePolygonWarning, match="dropped 2"):
        ann = parse_annotations(doc(words))
    assert list(ann.images["a.jpg"].words) == ["1"]


def test_malformed_json_names_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": {')
    with pytest.raises(AnnotationError, match="broken.json: not valid JSON"):
        load_annotations(path)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../../b.jpg", "C:/x.jpg"])
def test_image_names_cannot_escape_the_image_folder(name):
    with pytest.raises(AnnotationError, match="relative path"):
        parse_annotations({"images": {name: {"words": {}}}})


def test_json_round_trip(tmp_path):
    ann = parse_annotations(doc({"0001": {"points": SQUARE, "transcription": "TOTAL"}}, img_w=60, img_h=40))
    save_annotations(ann, tmp_path / "out.json")
    assert load_annotations(tmp_path / "out.json") == ann


def test_csv_json_round_trip(tmp_path):
    predictions = {
        "a.jpg": [np.array(SQUARE, np.float32), np.array([[1, 2], [30, 2], [30, 9], [15, 12], [1, 9]], np.float32)],
        "b.jpg": [],
    }
    text = format_csv(predictions)
    assert text.splitlines()[0] == "filename,polygons"
    assert text.splitlines()[1] == "a.jpg,10 10 50 10 50 30 10 30|1 2 30 2 30 9 15 12 1 9"
    back = parse_csv(text)
    assert set(back) == {"a.jpg", "b.jpg"} and back["b.jpg"] == []
    for a, b in zip(predictions["a.jpg"], back["a.jpg"], strict=True):
        np.testing.assert_array_equal(a, b)
    write_predictions(back, tmp_path / "p.json")
    via_json = read_predictions(tmp_path / "p.json")
    write_predictions(via_json, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_text() == text
    assert from_annotations(load_annotations(tmp_path / "p.json")).keys() == predictions.keys()


def test_csv_errors_name_line():
    with pytest.raises(AnnotationError, match="line 2 .*a.jpg.*polygon 0"):
        parse_csv("filename,polygons\na.jpg,1 2 3\n", source="p.csv")
    with pytest.raises(AnnotationError, match="header"):
        parse_csv("a.jpg,1 2 3 4 5 6\n")


def test_duplicate_word_ids_and_images_are_refused_not_silently_merged(tmp_path):
    path = tmp_path / "gt.json"
    words = '{"w1": {"points": [[0, 0], [9, 0], [9, 9]]}, "w1": {"points": [[1, 1], [8, 1], [8, 8]]}}'
    path.write_text('{"images": {"a.jpg": {"words": ' + words + '}, "b.jpg": {}, "b.jpg": {}}}')
    with pytest.raises(AnnotationError) as err:
        load_annotations(path)
    message = str(err.value)
    assert "image 'a.jpg', word 'w1': word id listed 2 times" in message
    assert "image 'b.jpg': image listed 2 times" in message


def test_lenient_validation_keeps_good_images_and_lists_the_rest():
    data = {
        "images": {
            "good.jpg": {"words": {"1": {"points": SQUARE}, "flat": {"points": [[0, 0], [5, 5], [9, 9]]}}},
            "bad.jpg": {"words": {"1": {"points": [[0, 0], [1, 1]]}, "2": {"points": SQUARE}}},
            "../up.jpg": {"words": {}},
            "empty.jpg": {"words": {}},
        }
    }
    annotations, issues = validate_annotations(data)
    assert list(annotations.images) == ["good.jpg", "empty.jpg"]
    assert list(annotations.images["good.jpg"].words) == ["1"]
    assert [(i.image, i.word, i.fatal) for i in issues] == [
        ("good.jpg", "flat", False),
        ("bad.jpg", "1", True),
        ("../up.jpg", None, True),
    ]
    assert validate_annotations([1, 2])[0].images == {}


@pytest.mark.parametrize("name", [".", "", "a\x00.jpg", "./"])
def test_empty_or_nul_names_are_refused(name):
    with pytest.raises(AnnotationError, match="relative path"):
        parse_annotations({"images": {name: {"words": {}}}})


def test_bow_tie_is_kept_for_the_check_not_dropped_as_zero_area():
    bow_tie = [[10, 10], [40, 30], [40, 10], [10, 30]]
    ann = parse_annotations(doc({"1": {"points": bow_tie}}))
    assert list(ann.images["a.jpg"].words) == ["1"]


@pytest.mark.parametrize(("content", "problem"), [(b"\xff\xfe{}", "not valid JSON"), (b"[" * 100000, "nested")])
def test_undecodable_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "gt.json"
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=f"gt.json: not valid JSON.*{problem}|gt.json: {problem}"):
        load_annotations(path)


@pytest.mark.parametrize(
    ("word", "problem"),
    [
        ({"points": SQUARE, "illegibility": "yes"}, "field 'illegibility': Input should be a valid boolean"),
        ({"points": SQUARE, "illegibility": 1}, "field 'illegibility': Input should be a valid boolean"),
        ({"points": [["0", 0], [10, 0], [10, 10]]}, "field 'points.0.0"),
        ({"points": [[True, 0], [10, 0], [10, 10]]}, "field 'points.0.0"),
    ],
)
def test_strings_and_booleans_are_not_numbers_nor_numbers_booleans(word, problem):
    with pytest.raises(AnnotationError) as err:
        parse_annotations(doc({"w1": word}), source="gt.json")
    assert problem in str(err.value) and "'w1'" in str(err.value)


def test_a_name_not_written_as_the_folder_lists_it_says_how_to_write_it():
    with pytest.raises(AnnotationError, match="image name './a.jpg': write it 'a.jpg', as the folder lists it"):
        parse_annotations({"images": {"./a.jpg": {"words": {}}}})


def test_points_in_messages_carry_no_float32_noise():
    with pytest.raises(AnnotationError) as err:
        parse_annotations(doc({"1": {"points": [[0, 0], [148.4, 0], [148.4, 40.2]]}}, img_w=100, img_h=50))
    assert "[148.4, 0.0], [148.4, 40.2]]" in str(err.value) and "148.39999" not in str(err.value)
