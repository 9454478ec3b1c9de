import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from ocrdet.data.io.decode import ORIENTATION_TAG, orientation_matrix, transform_points
from ocrdet.data.io.format import ImageAnnotation, load_annotations, split_paths
from ocrdet.data.io.synth import SynthConfig, generate_dataset, render_receipt, synth_image

COUNTS = {"train": 24, "val": 8, "test": 4}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    assert generate_dataset(root, COUNTS["train"], COUNTS["val"], COUNTS["test"], seed=0) == COUNTS
    return root


def _samples(root: Path) -> list[tuple[bytes, ImageAnnotation]]:
    samples = []
    for split in COUNTS:
        image_dir, json_path = split_paths(root, split)
        for name, annotation in load_annotations(json_path).images.items():
            samples.append(((image_dir / name).read_bytes(), annotation))
    return samples


def _canonical(jpeg: bytes, annotation: ImageAnnotation) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Upright grey image as a viewer shows it, the polygons moved with it, and the ignore flags."""
    image = Image.open(io.BytesIO(jpeg))
    assert image.size == (annotation.img_w, annotation.img_h)
    matrix = orientation_matrix(image.getexif().get(ORIENTATION_TAG, 1), image.width, image.height)
    polygons, ignore = annotation.polygons()
    grey = np.asarray(ImageOps.exif_transpose(image).convert("L"))
    return grey, [transform_points(matrix, p) for p in polygons], ignore


def _check_text_matches_polygons(jpeg: bytes, annotation: ImageAnnotation) -> None:
    """Dark paper pixels lie in the (dilated) polygons, every word covers ink, and the page is upright."""
    grey, polygons, ignore = _canonical(jpeg, annotation)
    union = np.zeros_like(grey)
    cv2.fillPoly(union, [np.round(p).astype(np.int32) for p in polygons], 1)
    union = cv2.dilate(union, np.ones((5, 5), np.uint8)).astype(bool)

    _, labels, stats, _ = cv2.connectedComponentsWithStats((grey > 160).astype(np.uint8))
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    hull = cv2.convexHull(np.argwhere(labels == largest)[:, ::-1].astype(np.int32))
    paper = np.zeros_like(grey)
    cv2.fillPoly(paper, [hull], 1)
    paper = cv2.erode(paper, np.ones((15, 15), np.uint8)).astype(bool)

    dark = (grey < 110) & paper
    assert dark.sum() > 500
    assert (dark & union).sum() / dark.sum() >= 0.9

    ink = np.median(grey[paper]) - 60
    for polygon, skip in zip(polygons, ignore, strict=True):
        if not skip:
            word = np.zeros_like(grey)
            cv2.fillPoly(word, [np.round(polygon).astype(np.int32)], 1)
            assert (grey[word.astype(bool)] < ink).sum() >= 5

    centres = np.array([p.mean(axis=0) for p in polygons])
    sizes = np.array([np.ptp(p, axis=0) for p in polygons])
    assert np.median(sizes[:, 0] / sizes[:, 1]) > 1.5  # words run left to right
    top, bottom = centres[:, 1].min(), centres[:, 1].max()
    assert (centres[0, 1] - top) / (bottom - top) < 0.1  # the shop name is on top


def test_layout_counts_and_valid_json(dataset: Path) -> None:
    for split, count in COUNTS.items():
        image_dir, json_path = split_paths(dataset, split)
        annotations = load_annotations(json_path)
        assert len(annotations.images) == count
        assert sorted(annotations.images) == sorted(p.name for p in image_dir.iterdir())
        for annotation in annotations.images.values():
            assert len(annotation.words) >= 10
            assert all(w.transcription for w in annotation.words.values())


def test_polygons_lie_inside_the_stored_image(dataset: Path) -> None:
    for _, annotation in _samples(dataset):
        for word in annotation.words.values():
            points = word.polygon()
            assert len(points) == 4
            assert points.min() >= 0
            assert points[:, 0].max() <= annotation.img_w and points[:, 1].max() <= annotation.img_h


def test_text_pixels_lie_in_polygons_after_exif(dataset: Path) -> None:
    for jpeg, annotation in _samples(dataset):
        _check_text_matches_polygons(jpeg, annotation)


def test_exif_fraction_is_respected(dataset: Path) -> None:
    orientations = [Image.open(io.BytesIO(jpeg)).getexif().get(ORIENTATION_TAG) for jpeg, _ in _samples(dataset)]
    tagged = [o for o in orientations if o is not None]
    assert 3 <= len(tagged) <= 18  # 36 images at 0.25
    assert set(tagged) <= set(SynthConfig().exif_orientations)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_round_trips(orientation: int) -> None:
    config = SynthConfig(exif_fraction=1.0, exif_orientations=(orientation,))
    jpeg, annotation = synth_image(np.random.default_rng(orientation), config)
    assert Image.open(io.BytesIO(jpeg)).getexif()[ORIENTATION_TAG] == orientation
    _check_text_matches_polygons(jpeg, annotation)


def test_same_seed_same_bytes(dataset: Path, tmp_path: Path) -> None:
    generate_dataset(tmp_path / "a", 3, 2, seed=0)
    generate_dataset(tmp_path / "b", 3, 2, seed=0)
    generate_dataset(tmp_path / "c", 3, 2, seed=1)
    assert not (tmp_path / "a" / "jsons" / "test.json").exists()
    for split in ("train", "val"):
        names = sorted(p.name for p in (tmp_path / "a" / "images" / split).iterdir())
        for root in (tmp_path / "b", dataset):  # image i does not depend on the split sizes
            for name in names:
                a, b = ((r / "images" / split / name).read_bytes() for r in (tmp_path / "a", root))
                assert a == b
        json_a, json_b, json_c = (json.loads((tmp_path / r / "jsons" / f"{split}.json").read_text()) for r in "abc")
        assert json_a == json_b
        assert json_a != json_c


def test_missing_fonts_fall_back_to_pillow_default(tmp_path: Path) -> None:
    config = SynthConfig(font_dir=tmp_path / "no-fonts", exif_fraction=0.0)
    image, words = render_receipt(np.random.default_rng(0), config)
    assert image.dtype == np.uint8 and image.ndim == 3
    assert len(words) >= 10
    _check_text_matches_polygons(*synth_image(np.random.default_rng(0), config))


def test_synth_refuses_a_non_empty_folder_and_never_replaces_what_it_did_not_write(tmp_path, capsys):
    from ocrdet.cli import main

    root = tmp_path / "real"
    (root / "images" / "train").mkdir(parents=True)
    (root / "jsons").mkdir()
    mine = {"images": {"real.jpg": {"words": {}}}}
    (root / "jsons" / "train.json").write_text(json.dumps(mine))
    (root / "images" / "train" / "real.jpg").write_bytes(b"my receipt")
    before = sorted((p.relative_to(root), p.read_bytes()) for p in root.rglob("*") if p.is_file())
    with pytest.raises(SystemExit) as info:
        main(["synth", "--out", str(root), "--train", "2", "--val", "1"])
    assert str(info.value.code).startswith(f"ocrdet: {root}: not empty; synth writes into a new or empty folder")
    with pytest.raises(SystemExit) as info:
        main(["synth", "--out", str(root), "--train", "2", "--val", "1", "--force"])
    assert (
        info.value.code == f"ocrdet: {root}: jsons/train.json not written by ocrdet synth; refusing to replace "
        "(move it away first)"
    )
    assert sorted((p.relative_to(root), p.read_bytes()) for p in root.rglob("*") if p.is_file()) == before


def test_synth_force_replaces_its_own_earlier_set(tmp_path):
    root = tmp_path / "synth"
    generate_dataset(root, 3, 1, seed=0)
    generate_dataset(root, 1, 2, seed=1, force=True)
    assert sorted(p.name for p in (root / "images" / "train").iterdir()) == ["train_00000.jpg"]  # no stale images
    assert sorted(load_annotations(split_paths(root, "val")[1]).images) == ["val_00000.jpg", "val_00001.jpg"]
