"""The GPU decode path, checked on the CPU: torchvision's decoder (the one nvJPEG replaces on a GPU) against our
simplejpeg decode, within 2 grey levels, EXIF orientation included; the letterbox on the device against OpenCV's;
the automatic choice (the faster, and the CPU without CUDA)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ocrdet.data.io.decode import ORIENTATION_TAG, ImageDecodeError, apply_orientation, decode_bytes
from ocrdet.data.io.gpu_decode import (
    AUTO,
    CPU,
    GPU,
    choose_decoder,
    decode_jpegs,
    decode_on_device,
    decode_times,
    device_decodable,
    faster,
    orient,
)
from ocrdet.data.transforms.augment import letterbox_extent
from ocrdet.data.transforms.item import val_image, val_image_tensor

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


def test_device_decode_gives_the_records_of_the_cpu_decode():
    """Orientation, stored size and the stored -> image matrix equal ``decode_bytes``'s; pixels within 2 grey
    levels; a PNG in the batch goes through ``decode_bytes`` and still comes back as a tensor."""
    png = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 7, np.uint8)).save(png, "PNG")
    datas = [_jpeg(0, 6), png.getvalue(), _jpeg(1, 3)]
    for data, decoded in zip(datas, decode_on_device(datas, "cpu"), strict=True):
        ours = decode_bytes(data)
        assert isinstance(decoded.image, torch.Tensor) and tuple(decoded.image.shape) == ours.image.shape
        assert (decoded.orientation, decoded.stored_size) == (ours.orientation, ours.stored_size)
        assert np.allclose(decoded.matrix, ours.matrix)
        assert np.abs(decoded.image.numpy().astype(int) - ours.image.astype(int)).max() <= 2


def test_a_damaged_jpeg_is_reported_like_the_cpu_decode_reports_it():
    good = _jpeg(0)
    with pytest.raises(ImageDecodeError, match="corrupt JPEG"):
        decode_on_device([good, good[:200]], "cpu")
    assert not device_decodable(b"\xff\xd8 not a header") and not device_decodable(b"\x89PNG")


@pytest.mark.parametrize("size", [160, 256, 300, 500])
def test_val_image_tensor_is_val_image_on_a_tensor(size):
    """Same scale, extent and padding as the OpenCV letterbox; at scales 0.4x-1.25x the pixels within about a
    grey level on average (antialiased bilinear against INTER_AREA / INTER_LINEAR), the padding exactly zero."""
    image = decode_bytes(_jpeg(2, size=(400, 300))).image
    ours, scale = val_image(image, size)
    tensor, tensor_scale = val_image_tensor(torch.from_numpy(image), size)
    assert tensor_scale == scale and tensor.dtype == torch.uint8 and tuple(tensor.shape) == ours.shape
    h, w = letterbox_extent(image.shape, scale)
    diff = np.abs(tensor.numpy().astype(int) - ours.astype(int))
    assert diff[:h, :w].mean() <= 1.2 and not tensor.numpy()[h:].any() and not tensor.numpy()[:, w:].any()


def test_the_faster_decoder_is_chosen_and_cpu_without_cuda():
    assert faster({CPU: 2.0, GPU: 1.0}) == GPU
    assert faster({CPU: 1.0, GPU: 2.0}) == CPU and faster({CPU: 1.0}) == CPU
    datas = [_jpeg(seed) for seed in range(3)]
    times = decode_times(datas, 64, device="cpu")  # the device path, timed on the CPU
    assert set(times) == {CPU, GPU} and min(times.values()) > 0
    assert choose_decoder(AUTO, "cpu", datas, 64) == CPU  # auto keeps the CPU on a CPU device, without timing
    assert choose_decoder(GPU, "cpu", datas, 64) == GPU and choose_decoder(CPU, "cuda", datas, 64) == CPU
    if not torch.cuda.is_available():
        assert set(decode_times(datas, 64)) == {CPU}
    with pytest.raises(ValueError, match="decoder must be one of auto, cpu, gpu, got 'nvjpeg'"):
        choose_decoder("nvjpeg", "cpu", datas, 64)
