"""JPEG decode on the GPU with what torch already ships (``torchvision.io.decode_jpeg(device="cuda")``, nvJPEG),
beside the CPU decode of ``ocrdet.data.io.decode`` (simplejpeg, libjpeg-turbo).

``decode_jpegs(datas, device)`` returns upright uint8 (H, W, 3) RGB tensors on ``device``: full resolution (nvJPEG
has no DCT scaling), EXIF orientation applied on the device (nvJPEG does not apply it). On the CPU the same
function runs torchvision's libjpeg decoder, which is what the parity test compares with our decode.
``choose_decoder`` times both on sample files and picks the GPU only where CUDA is present and faster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ocrdet.data.io.decode import decode_bytes, read_orientation

CPU, GPU = "cpu", "gpu"


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


def decode_jpegs(datas: Sequence[bytes], device: torch.device | str) -> list[torch.Tensor]:
    """Upright uint8 (H, W, 3) RGB tensors on ``device`` (one batched nvJPEG call on CUDA)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
    decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)
    return [orient(image.permute(1, 2, 0), read_orientation(data)) for image, data in zip(decoded, datas, strict=True)]


def _seconds(decode: object, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        decode()  # type: ignore[operator]
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def decode_times(datas: Sequence[bytes]) -> dict[str, float]:
    """Seconds per image, best of 3, of our CPU decode to a tensor (``cpu``) and, with CUDA, of nvJPEG to a tensor
    on the GPU (``gpu``): both end where a batch needs its pixels, the GPU path without a host copy."""

    def cpu() -> list[torch.Tensor]:
        return [torch.from_numpy(decode_bytes(data).image) for data in datas]

    times = {CPU: _seconds(cpu) / len(datas)}
    if torch.cuda.is_available():
        decode_jpegs(datas, "cuda")  # nvJPEG's handle and buffers: created once, not timed
        times[GPU] = _seconds(lambda: decode_jpegs(datas, "cuda")) / len(datas)
    return times


def choose_decoder(datas: Sequence[bytes]) -> str:
    """``gpu`` when CUDA is present and nvJPEG decodes ``datas`` faster than our CPU decode, else ``cpu``."""
    times = decode_times(datas)
    return GPU if times.get(GPU, float("inf")) < times[CPU] else CPU
