from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from ocrdet.data.io.decode import ImageDecodeError, decode_image, transform_points
from ocrdet.data.io.format import AnnotationError, load_annotations, split_paths
from ocrdet.data.io.synth import generate_dataset
from ocrdet.data.sources.folder import FolderSource, load_sample, resize_long_side


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("receipts")
    generate_dataset(root, n_train=6, n_val=0, seed=1)
    return root


def _stored(root: Path) -> list[tuple[Path, list[np.ndarray], np.ndarray]]:
    image_dir, json_path = split_paths(root, "train")
    return [(image_dir / name, *a.polygons()) for name, a in load_annotations(json_path).images.items()]


def test_full_size_is_the_decoded_image(root: Path) -> None:
    source = FolderSource(root, "train")
    assert len(source) == 6 and source.names == [p.name for p, _, _ in _stored(root)]
    for i, (path, polygons, ignore) in enumerate(_stored(root)):
        decoded = decode_image(path)
        sample = source.get(i)
        assert sample.name == path.name
        np.testing.assert_array_equal(sample.image, decoded.image)
        np.testing.assert_array_equal(sample.matrix, decoded.matrix)
        np.testing.assert_array_equal(sample.ignore, ignore)
        assert all(p.dtype == np.float32 for p in sample.polygons)
        for got, stored in zip(sample.polygons, polygons, strict=True):
            np.testing.assert_array_equal(got, decoded.to_image(stored))


def test_shrunk_samples_match_pillow_upright_and_resized(root: Path) -> None:
    source = FolderSource(root, "train", long_side=320)
    orientations = set()
    for i, (path, polygons, _) in enumerate(_stored(root)):
        sample = source.get(i)
        with Image.open(path) as img:
            orientations.add(img.getexif().get(0x0112, 1))
            stored_w, stored_h = img.size
            upright = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        height, width = sample.image.shape[:2]
        assert max(height, width) == 320 and sample.image.dtype == np.uint8
        reference = cv2.resize(upright, (width, height), interpolation=cv2.INTER_AREA).astype(int)
        image = sample.image.astype(int)
        # DCT-domain downscaling differs from a full decode by a few grey levels; a wrong orientation by tens and
        # a one-pixel shift by about twice as much as that.
        error = np.abs(image - reference).mean()
        assert error < 6.0 and error < 0.6 * np.abs(image[1:] - reference[:-1]).mean()
        corners = transform_points(sample.matrix, [[0, 0], [stored_w, stored_h]])
        np.testing.assert_allclose(np.sort(corners, axis=0), [[0, 0], [width, height]], atol=1e-9)
        for got, stored in zip(sample.polygons, polygons, strict=True):
            np.testing.assert_array_equal(got, transform_points(sample.matrix, stored).astype(np.float32))
    assert len(orientations) > 1, "the fixture should hold EXIF-rotated images"


def test_resize_long_side() -> None:
    small = np.zeros((100, 60, 3), np.uint8)
    same, matrix = resize_long_side(small, 100)
    assert same is small and np.array_equal(matrix, np.eye(3))
    big = np.zeros((1000, 301, 3), np.uint8)
    out, matrix = resize_long_side(big, 400)
    assert out.shape == (400, 120, 3)
    np.testing.assert_allclose(transform_points(matrix, [[301, 1000]]), [[120, 400]])


def test_missing_files_are_named(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="nothing.jpg"):
        load_sample(tmp_path / "nothing.jpg", "nothing.jpg", [], np.zeros(0, bool), 320)
    with pytest.raises(AnnotationError, match="val.json"):
        FolderSource(root, "val")


def test_sroie_sample(shared_data: Path) -> None:
    source = FolderSource(shared_data / "sroie", "val", long_side=1024)
    sample = source.get(0)
    height, width = sample.image.shape[:2]
    assert max(height, width) <= 1024 and len(sample.polygons) == len(sample.ignore) > 0
    points = np.concatenate(sample.polygons)
    assert (points >= -1).all() and (points <= [width + 1, height + 1]).all()
