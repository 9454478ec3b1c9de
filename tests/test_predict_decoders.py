"""``Detector``'s two decoders give the same detections: ``gpu`` (torchvision decode and torch letterbox on the
model's device; run here on the CPU, the path nvJPEG takes on CUDA) against ``cpu`` (ours, OpenCV), on drawn pages
with EXIF orientations, in batches, with a damaged file among them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ocrdet.data.io.decode import ORIENTATION_TAG, ImageDecodeError
from ocrdet.data.io.gpu_decode import CPU, GPU
from ocrdet.infer import Detector
from ocrdet.model.postprocess import PostprocessConfig

ROWS = range(60, 820, 70)
"""Top edges of the ink bars of a page."""


def ink_model(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """(B, H, W, 3) uint8 array or tensor -> (B, 1, H, W): 1 where the page is inked (paper white, padding black)."""
    grey = torch.as_tensor(images).float().mean(dim=3).cpu().numpy()
    return ((grey > 20) & (grey < 160)).astype(np.float32)[:, None]


def page(path: Path, seed: int, orientation: int) -> Path:
    """A white 900 x 600 JPEG with ink bars (text lines) at random places, stored with an EXIF orientation."""
    rng = np.random.default_rng(seed)
    image = np.full((900, 600, 3), 255, np.uint8)
    for y in ROWS:
        x, length = int(rng.integers(20, 200)), int(rng.integers(100, 350))
        image[y : y + 24, x : x + length] = 60
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def boxes(polygons: list[np.ndarray]) -> np.ndarray:
    """(N, 4) axis-aligned boxes (x0, y0, x1, y1), sorted."""
    out = np.array([[*p.min(axis=0), *p.max(axis=0)] for p in polygons])
    return out[np.lexsort(out.T[::-1])]


def test_gpu_and_cpu_decoders_find_the_same_lines(tmp_path):
    paths = [page(tmp_path / f"p{k}.jpg", k, orientation) for k, orientation in enumerate((1, 6, 3, 8, 1))]
    found = {}
    for decoder in (CPU, GPU):
        detector = Detector(ink_model, PostprocessConfig(), eval_size=320, decoder=decoder)
        detector.DECODE_BATCH = 2  # batches of 2, 2 and 1
        found[decoder] = detector.detect_files(paths)
    assert list(found[CPU]) == list(found[GPU]) == [p.name for p in paths]
    pixel = 900 / 320  # one network pixel in the stored frame: the same boxes within 2 of them
    for name in found[CPU]:
        cpu, gpu = boxes(found[CPU][name]), boxes(found[GPU][name])
        assert len(cpu) == len(gpu) == len(ROWS)
        assert np.abs(cpu - gpu).max() <= 2 * pixel + 1e-3  # edges blurred a little differently


def test_a_damaged_file_is_named_and_the_others_go_on(tmp_path):
    good = page(tmp_path / "good.jpg", 0, 1)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:300])
    errors: list[ImageDecodeError] = []
    detector = Detector(ink_model, PostprocessConfig(), eval_size=320, decoder=GPU)
    predictions = detector.detect_files([bad, good, tmp_path / "missing.jpg"], on_error=errors.append)
    assert list(predictions) == ["good.jpg"] and len(predictions["good.jpg"]) == len(ROWS)
    assert [str(e).split(":")[0] for e in errors] == [str(bad), str(tmp_path / "missing.jpg")]
    assert "corrupt JPEG" in str(errors[0])
    with pytest.raises(ImageDecodeError, match="bad.jpg: corrupt JPEG"):
        detector.detect(bad)


def test_auto_keeps_the_cpu_decoder_on_a_cpu_device(tmp_path):
    detector = Detector(ink_model, PostprocessConfig(), eval_size=320, decoder="auto", device="cpu")
    detector.detect(page(tmp_path / "p.jpg", 0, 1))
    assert detector.decoder == CPU
    with pytest.raises(ValueError, match="decoder must be one of"):
        Detector(ink_model, PostprocessConfig(), eval_size=320, decoder="nvjpeg")
