import numpy as np
import pytest

from ocrdet.arrays import split_rows


@pytest.mark.parametrize("cuts", [[], [0], [3, 3, 7], [10], [2, 5, 9]])
def test_split_rows_equals_np_split(cuts: list[int]) -> None:
    array = np.arange(20, dtype=np.float32).reshape(10, 2)
    ours, numpy = split_rows(array, np.array(cuts, dtype=np.int64)), np.split(array, cuts)
    assert len(ours) == len(numpy)
    for a, b in zip(ours, numpy, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype and a.shape == b.shape
