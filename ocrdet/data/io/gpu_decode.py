"""JPEG decode on the GPU with what torch already ships (``torchvision.io.decode_jpeg(device="cuda")``, nvJPEG),
beside the CPU decode of ``ocrdet.data.io.decode`` (simplejpeg, libjpeg-turbo), for prediction batches.

``decode_on_device(datas, device)`` returns ``DecodedImage`` records whose ``image`` is an upright uint8 (H, W, 3)
RGB tensor on ``device``: full resolution (nvJPEG has no DCT scaling), EXIF orientation applied on the device (nvJPEG
does not apply it), one batched call; ``ocrdet.data.transforms.item.val_image_tensor`` letterboxes such a tensor
on its device. On the CPU the same functions run torchvision's libjpeg decoder: that is how the tests exercise the
path a GPU runs.

``choose_decoder`` times what ``ocrdet predict`` does per image both ways (decode + letterbox: ours with DCT
scaling and OpenCV, or torchvision + torch on the device) and picks ``gpu`` only where the device is CUDA and it
is faster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import simplejpeg
import torch

from ocrdet.data.io.decode import (
    JPEG_START,
    MAX_PIXELS,
    DecodedImage,
    decode_bytes,
    orientation_matrix,
    read_orientation,
)
from ocrdet.data.transforms.item import val_image, val_image_tensor

CPU, GPU, AUTO = "cpu", "gpu", "auto"
DECODERS = (AUTO, CPU, GPU)
"""``cpu``: ours (simplejpeg, OpenCV); ``gpu``: torchvision on the model's device (nvJPEG on CUDA); ``auto``:
``gpu`` where the device is CUDA and ``choose_decoder`` measures it faster."""


def orient(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Stored (H, W, C) tensor -> upright, as ``ocrdet.data.io.decode.apply_orientation`` does for arrays."""
    ops = {
        1: lambda t: t,
        2: lambda t: t.flip(1),
        3: lambda t: t.flip(0, 1),
        4: lambda t: t.flip(0),
        5: lambda t: t.transpose(0, 1),
        6: lambda t: torch.rot90(t, -1, (0, 1)),
        7: lambda t: torch.rot90(t, 2, (0, 1)).transpose(0, 1),
        8: lambda t: torch.rot90(t, 1, (0, 1)),
    }
    if orientation not in ops:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")
    return ops[orientation](image)


def device_decodable(data: bytes) -> bool:
    """A JPEG whose header reads, in a colour space nvJPEG decodes to RGB, within ``MAX_PIXELS``; everything else
    (PNG, CMYK, damaged headers, decompression bombs) goes to ``decode_bytes``, which decodes it or names the
    problem."""
    if data[:2] != JPEG_START:
        return False
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return False
    return colorspace in ("RGB", "YCbCr", "Gray") and height * width <= MAX_PIXELS


def decode_jpegs(datas: Sequence[bytes], device: torch.device | str) -> list[torch.Tensor]:
    """Upright uint8 (H, W, 3) RGB tensors on ``device`` (one batched nvJPEG call on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
    decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    return [orient(image.permute(1, 2, 0), read_orientation(data)) for image, data in zip(decoded, datas, strict=True)]


def _decoded(image: torch.Tensor, data: bytes) -> DecodedImage:
    """The record of a full-resolution upright ``image`` decoded from ``data``."""
    orientation = read_orientation(data)
    height, width = image.shape[:2]
    stored = (height, width) if orientation >= 5 else (width, height)
    return DecodedImage(image, orientation, stored, orientation_matrix(orientation, *stored))  # type: ignore[arg-type]


def _decode_one(data: bytes, device: torch.device | str) -> torch.Tensor | None:
    try:
        return decode_jpegs([data], device)[0]
    except RuntimeError:
        return None


def decode_on_device(datas: Sequence[bytes], device: torch.device | str) -> list[DecodedImage]:
    """``decode_bytes`` for a batch, on ``device``: each ``image`` a uint8 (H, W, 3) tensor there.

    JPEGs that ``device_decodable`` admits are decoded in one batched call (if that call fails, one by one); any
    other file, or one torchvision refuses, is decoded by ``decode_bytes`` (which raises ``ImageDecodeError``
    naming the problem) and moved to the device.
    """
    out: list[DecodedImage | None] = [None] * len(datas)
    batch = [k for k, data in enumerate(datas) if device_decodable(data)]
    if batch:
        try:
            images: list[torch.Tensor | None] = list(decode_jpegs([datas[k] for k in batch], device))
        except RuntimeError:  # one damaged file fails the whole batched call
            images = [_decode_one(datas[k], device) for k in batch]
        for k, image in zip(batch, images, strict=True):
            out[k] = None if image is None else _decoded(image, datas[k])
    for k, data in enumerate(datas):
        if out[k] is None:
            decoded = decode_bytes(data)
            out[k] = DecodedImage(
                torch.from_numpy(np.array(decoded.image)).to(device),  # type: ignore[arg-type]
                decoded.orientation,
                decoded.stored_size,
                decoded.matrix,
            )
    return out  # type: ignore[return-value]


def _seconds(run: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def cpu_letterboxed(datas: Sequence[bytes], size: int) -> list[np.ndarray]:
    """What ``ocrdet predict`` feeds the model with the CPU decoder: DCT-scaled decode, OpenCV letterbox."""
    return [val_image(decode_bytes(data, min_long_side=size).image, size)[0] for data in datas]


def device_letterboxed(datas: Sequence[bytes], size: int, device: torch.device | str) -> list[torch.Tensor]:
    """The same with the ``gpu`` decoder: torchvision decode and torch letterbox on ``device``."""
    return [val_image_tensor(decoded.image, size)[0] for decoded in decode_on_device(datas, device)]  # type: ignore[arg-type]


def decode_times(datas: Sequence[bytes], size: int, device: torch.device | str | None = None) -> dict[str, float]:
    """Seconds per image, best of 3, of decode + letterbox to ``size`` with our CPU decoder (``cpu``) and with
    torchvision on ``device`` (``gpu``; default: CUDA when present, else no ``gpu`` entry). Both end where a
    batch needs its pixels: the CPU's on the host, the device's on the device without a host copy."""
    times = {CPU: _seconds(lambda: cpu_letterboxed(datas, size)) / len(datas)}
    if device is None and torch.cuda.is_available():
        device = "cuda"
    if device is not None:
        device_letterboxed(datas, size, device)  # nvJPEG's handle and buffers: created once, not timed
        times[GPU] = _seconds(lambda: device_letterboxed(datas, size, device)) / len(datas)
    return times


def faster(times: dict[str, float]) -> str:
    """``gpu`` when it was timed and took less than ``cpu``, else ``cpu``."""
    return GPU if times.get(GPU, float("inf")) < times[CPU] else CPU


def choose_decoder(decoder: str, device: torch.device | str, datas: Sequence[bytes], size: int) -> str:
    """``cpu`` or ``gpu`` for ``decoder`` (``DECODERS``) with a model on ``device``: ``auto`` times both on
    ``datas`` where the device is CUDA (``faster``) and keeps the CPU elsewhere, or without a JPEG to time."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
    if decoder != AUTO:
        return decoder
    jpegs = [data for data in datas if device_decodable(data)]
    if torch.device(device).type != "cuda" or not jpegs:
        return CPU
    return faster(decode_times(jpegs, size, device))
