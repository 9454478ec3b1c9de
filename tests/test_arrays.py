import numpy as np
import pytest

from ocrdet.arrays import check_polygons, split_rows


@pytest.mark.parametrize("cuts", [[], [0], [3, 3, 7], [10], [2, 5, 9]])
def test_split_rows_equals_np_split(cuts: list[int]) -> None:
    array = np.arange(20, dtype=np.float32).reshape(10, 2)
    ours, numpy = split_rows(array, np.array(cuts, dtype=np.int64)), np.split(array, cuts)
    assert len(ours) == len(numpy)
    for a, b in zip(ours, numpy, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype and a.shape == b.shape


def test_check_polygons_names_the_bad_polygon_and_copies() -> None:
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=np.float32)
    out = check_polygons([square])
    assert out[0].dtype == np.float64 and not np.shares_memory(out[0], square)
    with pytest.raises(ValueError, match=r"detection polygon 1: expected an \(N >= 3, 2\) array"):
        check_polygons([square, square[:2]], "detection")
    assert len(check_polygons([square[:1]], min_points=1)[0]) == 1
    with pytest.raises(ValueError, match="polygon 0: coordinates must be finite"):
        check_polygons([np.full((3, 2), np.nan)])
