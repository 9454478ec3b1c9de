"""The GPU decode path, checked on the CPU: torchvision's decoder (the one nvJPEG replaces on a GPU) against our
simplejpeg decode, within 2 grey levels, EXIF orientation included; the automatic choice keeps the CPU without
CUDA."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ocrdet.data.io.decode import ORIENTATION_TAG, apply_orientation, decode_bytes
from ocrdet.data.io.gpu_decode import CPU, choose_decoder, decode_jpegs, decode_times, orient

pytest.importorskip("torchvision")


def _jpeg(seed: int, orientation: int = 1, size: tuple[int, int] = (96, 64)) -> bytes:
    """A smooth random RGB image (so JPEG keeps it close), with an EXIF orientation tag unless 1."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.BILINEAR)
    exif = Image.Exif()
    if orientation != 1:
        exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_the_array_version(orientation):
    array = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    expected = apply_orientation(array, orientation)
    assert np.array_equal(orient(torch.from_numpy(array), orientation).numpy(), expected)


def test_torchvision_decode_is_within_2_grey_levels_of_ours():
    datas = [_jpeg(seed, orientation) for seed, orientation in enumerate((1, 3, 6, 8, 2))]
    decoded = decode_jpegs(datas, "cpu")
    for data, image in zip(datas, decoded, strict=True):
        ours = decode_bytes(data).image
        assert image.dtype == torch.uint8 and tuple(image.shape) == ours.shape  # upright, full resolution
        assert np.abs(image.numpy().astype(int) - ours.astype(int)).max() <= 2


def test_without_cuda_the_cpu_decode_is_chosen():
    datas = [_jpeg(seed) for seed in range(3)]
    times = decode_times(datas)
    assert times[CPU] > 0
    if not torch.cuda.is_available():
        assert set(times) == {CPU} and choose_decoder(datas) == CPU
