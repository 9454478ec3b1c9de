"""The data check: each kind of bad input is found, named by file (and word) with a reason; good inputs pass."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
from PIL import Image
from tiny_data import HEIGHT, SQUARE, WIDTH, annotations, encode, jpeg, write_json

from ocrdet.data.check import (
    DataCheckError,
    Problem,
    check_command,
    check_dataset,
    format_report,
    read_skip_report,
    usable_names,
    write_skip_report,
)
from ocrdet.data.io.decode import MAX_PIXELS, ORIENTATION_TAG


def _image(root: Path, name: str = "a.jpg") -> Path:
    return root / "images" / "train" / name


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda root: _image(root, name).write_bytes(data)


def _word(points: object, **image: object) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        data = annotations()
        data["images"]["a.jpg"]["words"]["w1"]["points"] = points
        data["images"]["a.jpg"].update(image)
        write_json(root, data)

    return mutate


def _truncate(root: Path) -> None:
    data = _image(root).read_bytes()
    _image(root).write_bytes(data[: len(data) // 2])


def _corrupt(root: Path) -> None:
    data = bytearray(_image(root).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 40] = b"\xff" * 40
    _image(root).write_bytes(bytes(data))


def _bomb_jpeg() -> bytes:
    """A valid small JPEG whose header claims 20000 x 20000 pixels."""
    data = bytearray(jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2
    return bytes(data)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with one row of data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" * (1 + 3 * width))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


def _duplicate_word_ids(root: Path) -> None:
    first = '{"w1": {"points": [[0, 0], [1, 0], [1, 1]]}, '
    write_json(root, json.dumps(annotations()).replace('{"w1": ', first + '"w1": ', 1))


def _duplicate_image(root: Path) -> None:
    text = json.dumps(annotations())
    write_json(root, text.replace('{"images": {', '{"images": {"a.jpg": {"words": {}}, ', 1))


def _escape(root: Path) -> None:
    data = annotations()
    data["images"]["../../etc/passwd"] = {"words": {}}
    write_json(root, data)


BAD = {
    "truncated JPEG": (_truncate, "undecodable", "a.jpg", None, "Premature end of JPEG file"),
    "corrupt JPEG": (_corrupt, "undecodable", "a.jpg", None, "corrupt JPEG"),
    "zero-byte file": (_write("a.jpg", b""), "undecodable", "a.jpg", None, "empty file"),
    "text named .jpg": (_write("a.jpg", b"hello"), "undecodable", "a.jpg", None, "not an image file"),
    "JPEG bomb header": (_write("a.jpg", _bomb_jpeg()), "undecodable", "a.jpg", None, "exceeds the limit"),
    "PNG bomb header": (_write("a.jpg", _png_header_only(20000, 20000)), "undecodable", "a.jpg", None, "limit"),
    "listed, not on disk": (lambda root: _image(root).unlink(), "missing", "a.jpg", None, "not on disk"),
    "NaN point": (_word([[0, 0], [float("nan"), 1], [2, 2]]), "annotations", "a.jpg", "w1", "not finite"),
    "inf point": (_word([[0, 0], [float("inf"), 1], [2, 2]]), "annotations", "a.jpg", "w1", "not finite"),
    "2 points": (_word([[0, 0], [5, 5]]), "annotations", "a.jpg", "w1", "at least 3 points"),
    "string point": (_word([[0, 0], ["x", 1], [2, 2]]), "annotations", "a.jpg", "w1", "valid number"),
    "bow tie": (_word([[10, 10], [40, 30], [40, 10], [10, 30]]), "annotations", "a.jpg", "w1", "not simple"),
    "self-intersection": (_word([[10, 10], [40, 30], [40, 10], [5, 40]]), "annotations", "a.jpg", "w1", "not simple"),
    "far outside": (_word([[10, 10], [4000, 10], [4000, 30]]), "annotations", "a.jpg", "w1", "outside the 64x48"),
    "outside img_w/img_h": (_word(SQUARE, img_w=20, img_h=20), "annotations", "a.jpg", "w1", "outside the 20x20"),
    "wrong img_w/img_h": (_word(SQUARE, img_w=100, img_h=200), "annotations", "a.jpg", None, "the file has 64x48"),
    "duplicate word id": (_duplicate_word_ids, "annotations", "a.jpg", "w1", "listed 2 times"),
    "duplicate image": (_duplicate_image, "annotations", "a.jpg", None, "image listed 2 times"),
    "words not an object": (_word(SQUARE, words=[]), "annotations", "a.jpg", None, "valid dictionary"),
    "path escape": (_escape, "annotations", "../../etc/passwd", None, "relative path inside the image folder"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_bad_input_is_named_and_its_image_left_out(tiny: Path, case: str) -> None:
    mutate, kind, file, word, reason = BAD[case]
    mutate(tiny)
    report = check_dataset(tiny, "train", workers=1)
    assert [(p.kind, p.file, p.word) for p in report.errors] == [(kind, file, word)], report.problems
    assert reason in report.errors[0].reason
    assert report.usable == [name for name in ("a.jpg", "b.jpg", "c.jpg") if name != file]
    assert f"{file}" in format_report(report) and reason in format_report(report)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("{", "not valid JSON"), ("[]", 'expected {"images"'), ('{"images": 3}', 'expected {"images"'), ("[" * 10**5, "")],
)
def test_unreadable_annotation_file_is_one_problem(tiny: Path, text: str, reason: str) -> None:
    json_path = write_json(tiny, text)
    report = check_dataset(tiny, "train", workers=1)
    assert [(p.kind, p.file, p.word) for p in report.problems] == [("annotations", str(json_path), None)]
    assert reason in report.problems[0].reason and report.usable == []
    with pytest.raises(DataCheckError, match="no usable image"):
        usable_names(report, "skip")


def _exif_jpeg(orientation: object) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return encode(Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)), "JPEG", exif=exif)


def _with_app1(body: bytes) -> bytes:
    """A JPEG with an APP1 (EXIF) segment holding ``body`` after ``Exif\\0\\0``."""
    data = jpeg()
    segment = b"Exif\x00\x00" + body
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + data[2:]


TEXT_ORIENTATION = b"II*\x00" + struct.pack("<IHHHI4sI", 8, 1, ORIENTATION_TAG, 2, 3, b"up\x00\x00", 0)
"""A little-endian TIFF block whose one entry, Orientation, is the text "up"."""


def _rgb(mode: str) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)).convert(mode)


GOOD = {
    "PNG": encode(_rgb("RGB"), "PNG"),
    "RGBA PNG": encode(_rgb("RGBA"), "PNG"),
    "palette PNG": encode(_rgb("P"), "PNG"),
    "16-bit grey PNG": encode(Image.fromarray(np.full((HEIGHT, WIDTH), 40000, np.uint16)), "PNG"),
    "grey JPEG": encode(_rgb("L"), "JPEG"),
    "CMYK JPEG": encode(_rgb("CMYK"), "JPEG"),
    "EXIF orientation 0": _exif_jpeg(0),
    "EXIF orientation 9": _exif_jpeg(9),
    "EXIF orientation 65535": _exif_jpeg(65535),
    "EXIF orientation text": _with_app1(TEXT_ORIENTATION),
    "broken EXIF block": _with_app1(b"II*\x00\xff\xff\xff\xff\x00\x00"),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_other_formats_and_bad_exif_are_fine(tiny: Path, case: str) -> None:
    _image(tiny).write_bytes(GOOD[case])
    report = check_dataset(tiny, "train", workers=1)
    assert report.problems == [] and report.usable == ["a.jpg", "b.jpg", "c.jpg"]
    assert report.sizes["a.jpg"] == (WIDTH, HEIGHT)


def test_huge_image_is_checked_at_one_eighth(tiny: Path) -> None:
    _image(tiny).write_bytes(simplejpeg.encode_jpeg(np.zeros((8000, 8000, 1), np.uint8), colorspace="GRAY"))
    write_json(tiny, annotations() | {"images": {**annotations()["images"], "a.jpg": {"words": {}}}})
    report = check_dataset(tiny, "train", workers=1)
    assert report.problems == [] and report.sizes["a.jpg"] == (8000, 8000) and 8000 * 8000 < MAX_PIXELS


def test_warnings_leave_images_usable(tiny: Path) -> None:
    _image(tiny, "extra.png").write_bytes(encode(_rgb("RGB"), "PNG"))
    (tiny / "images" / "train" / "notes.txt").write_text("not an image, not looked at")
    data = annotations()
    data["images"]["b.jpg"]["words"]["w2"] = {"points": [[0, 0], [5, 5], [10, 10]]}
    data["images"]["c.jpg"]["words"] = {}
    write_json(tiny, data)
    report = check_dataset(tiny, "train", workers=1)
    assert report.errors == []
    assert [(p.kind, p.file, p.word) for p in report.warnings] == [
        ("annotations", "b.jpg", "w2"),
        ("unlisted", "extra.png", None),
    ]
    assert report.usable == ["a.jpg", "b.jpg", "c.jpg"]
    counts = report.counts()
    assert (counts["words"], counts["images_without_words"], counts["warnings"]) == (2, 1, 2)
    assert usable_names(report, "error") == report.usable
    assert "warning  extra.png: on disk but not in the annotations" in format_report(report)


def test_every_problem_is_listed_not_only_the_first(tiny: Path) -> None:
    _image(tiny, "a.jpg").write_bytes(b"")
    _image(tiny, "b.jpg").unlink()
    data = annotations()
    data["images"]["c.jpg"]["words"]["w1"]["points"] = [[0, 0]]
    data["images"]["c.jpg"]["words"]["w2"] = {"points": [[0, 0], [9e9, 0], [0, 1]]}
    write_json(tiny, data)
    report = check_dataset(tiny, "train", workers=2)
    assert {(p.file, p.word) for p in report.errors} == {("a.jpg", None), ("b.jpg", None), ("c.jpg", "w1")}
    assert report.usable == [] and report.counts()["unusable"] == 3
    with pytest.raises(DataCheckError) as error:
        usable_names(report, "error")
    assert "3 problems make 3 of 3 images unusable" in str(error.value)
    assert all(name in str(error.value) for name in ("a.jpg: empty file", "b.jpg: listed", "c.jpg word 'w1'"))


def test_policies(tiny: Path) -> None:
    _truncate(tiny)
    report = check_dataset(tiny, "train", workers=1)
    with pytest.raises(DataCheckError, match="on_bad_sample=skip"):
        usable_names(report, "error")
    assert usable_names(report, "skip") == ["b.jpg", "c.jpg"]


def test_two_workers_find_what_one_finds(tiny: Path) -> None:
    _truncate(tiny)
    _image(tiny, "c.jpg").write_bytes(b"")
    one, two = check_dataset(tiny, "train", workers=1), check_dataset(tiny, "train", workers=2)
    assert one.problems == two.problems and one.sizes == two.sizes


def test_missing_split(tmp_path: Path) -> None:
    report = check_dataset(tmp_path, "val", workers=1)
    assert {(p.kind, p.reason) for p in report.problems} == {
        ("annotations", "annotation file not found"),
        ("missing", "image folder not found"),
    }


def test_skip_report_round_trip(tmp_path: Path) -> None:
    skipped = {"train": [Problem("missing", "a.jpg", None, "gone")], "val": []}
    write_skip_report(tmp_path / "skipped.json", skipped)
    assert read_skip_report(tmp_path / "skipped.json") == skipped
    assert [p.name for p in tmp_path.iterdir()] == ["skipped.json"]


def test_check_command_prints_every_split_and_sets_the_exit_status(tiny: Path, capsys) -> None:
    image_dir = tiny / "images" / "val"
    image_dir.mkdir()
    (image_dir / "a.jpg").write_bytes(jpeg())
    write_json(tiny, annotations(("a.jpg",)), split="val")
    assert check_command(tiny, workers=1) == 0
    out = capsys.readouterr().out
    assert "split 'train': 3 images listed" in out and "split 'val': 1 images listed" in out
    _truncate(tiny)
    assert check_command(tiny, ["train"], workers=1) == 1
    assert "error    a.jpg: corrupt JPEG: Premature end of JPEG file" in capsys.readouterr().out
    assert check_command(tiny / "nowhere") == 1


def test_sroie_is_clean(shared_data: Path) -> None:
    report = check_dataset(shared_data / "sroie", "val")
    assert report.problems == [] and len(report.usable) == 30
