import numpy as np
import pytest
from PIL import Image, ImageOps

from ocrdet.data.io.decode import (
    INVERSE_ORIENTATION,
    ORIENTATION_TAG,
    apply_orientation,
    orientation_matrix,
    transform_points,
)

ORIENTATIONS = range(1, 9)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_apply_orientation_matches_pil_exif_transpose(orientation: int) -> None:
    stored = np.random.default_rng(orientation).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(stored)
    image.getexif()[ORIENTATION_TAG] = orientation
    expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(apply_orientation(stored, orientation), expected)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_matrix_moves_points_with_the_pixels(orientation: int) -> None:
    height, width = 5, 7
    matrix = orientation_matrix(orientation, width, height)
    for row in range(height):
        for col in range(width):
            stored = np.zeros((height, width), dtype=np.uint8)
            stored[row, col] = 1
            canonical = apply_orientation(stored, orientation)
            (new_row,), (new_col,) = np.nonzero(canonical)
            centre = transform_points(matrix, np.array([[col + 0.5, row + 0.5]]))
            np.testing.assert_allclose(centre, [[new_col + 0.5, new_row + 0.5]])


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_image_corners_map_onto_the_canonical_image(orientation: int) -> None:
    height, width = 5, 7
    canonical_h, canonical_w = apply_orientation(np.zeros((height, width)), orientation).shape
    corners = transform_points(orientation_matrix(orientation, width, height), [[0, 0], [width, height]])
    np.testing.assert_allclose(np.sort(corners[:, 0]), [0, canonical_w])
    np.testing.assert_allclose(np.sort(corners[:, 1]), [0, canonical_h])


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_inverse_orientation_undoes_the_transform(orientation: int) -> None:
    upright = np.arange(35).reshape(5, 7)
    stored = apply_orientation(upright, INVERSE_ORIENTATION[orientation])
    np.testing.assert_array_equal(apply_orientation(stored, orientation), upright)


def test_unknown_orientation_is_refused() -> None:
    with pytest.raises(ValueError, match="1..8"):
        orientation_matrix(9, 4, 4)
    with pytest.raises(ValueError, match="1..8"):
        apply_orientation(np.zeros((2, 2)), 0)


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_inverse_orientation_matrix_is_the_matrix_inverse(orientation: int) -> None:
    height, width = 5, 7
    canonical_h, canonical_w = apply_orientation(np.zeros((height, width)), orientation).shape
    forward = orientation_matrix(orientation, width, height)
    backward = orientation_matrix(INVERSE_ORIENTATION[orientation], canonical_w, canonical_h)
    np.testing.assert_array_equal(backward @ forward, np.eye(3))
