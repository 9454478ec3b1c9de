"""Inference at the right scale: ``--size`` overrides the model's, and the scale picker (``--max-side``) runs pages
whose text is small at the first pass again at a larger side. Drawn pages and a stand-in model whose probability
map is the dark ink, so the text height the picker measures is known."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ocrdet.cli import main
from ocrdet.infer import TEXT_HEIGHT, Detector, pick_side, text_height
from ocrdet.model.postprocess import PostprocessConfig


def ink_model(images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, 1, H, W): 1 where the page is inked (grey 60; paper is white, padding black)."""
    grey = images.mean(axis=3)
    return ((grey > 20) & (grey < 160)).astype(np.float32)[:, None]


def page(path: Path, line_height: int, size: tuple[int, int] = (2400, 1600)) -> Path:
    """A white page with bars of ink ``line_height`` px tall (text lines), 300 px long, spaced out."""
    image = np.full((*size, 3), 255, np.uint8)
    for y in range(100, size[0] - 100 - line_height, line_height * 3):
        image[y : y + line_height, 200:500] = 60
    cv2.imwrite(str(path), image)
    return path


def test_pick_side_scales_small_text_up_to_the_target_within_bounds():
    assert pick_side(None, 512, 2048) == 512  # nothing measured
    assert pick_side(TEXT_HEIGHT * 2, 512, 2048) == 512  # tall enough: never shrinks
    assert pick_side(TEXT_HEIGHT / 2, 512, 2048) == 1024
    assert pick_side(TEXT_HEIGHT / 3, 512, 2048) == 1536
    assert pick_side(1.0, 512, 2048) == 2048  # capped
    assert pick_side(TEXT_HEIGHT / 2.1, 512, 1100) == 1088  # a multiple of 32 under the cap
    assert pick_side(TEXT_HEIGHT / 2, 512, 512) == 512  # picker off


def test_text_height_is_the_median_line_height():
    boxes = [np.array([[0, 0], [100, 0], [100, h], [0, h]], np.float32) for h in (4, 5, 30)]
    assert text_height(boxes) == pytest.approx(5.0)
    assert text_height([]) is None


def test_small_text_on_a_large_page_gets_a_larger_scale(tmp_path):
    detector = Detector(ink_model, PostprocessConfig(), eval_size=512, max_side=2048)
    small = detector.detect(page(tmp_path / "small.png", line_height=14))
    large = detector.detect(page(tmp_path / "large.png", line_height=90))
    assert small.side > 512 and large.side == 512
    # the second pass finds every line, at its height in the file's pixels
    lines = len(range(100, 2400 - 100 - 14, 42))
    assert len(small.polygons) == lines
    assert np.median(text_height(small.polygons)) == pytest.approx(14 * 2.5, rel=0.35)  # + the unclip margin


def test_small_text_is_lost_without_the_picker(tmp_path):
    """At 512 px the 14 px lines are 3 px tall: thinner than min_size after shrinking, so not found."""
    plain = Detector(ink_model, PostprocessConfig(), eval_size=512).detect(page(tmp_path / "small.png", 14))
    assert plain.side == 512 and len(plain.polygons) < len(range(100, 2400 - 100 - 14, 42))


def test_size_overrides_the_checkpoint(tiny_checkpoint):
    assert Detector.from_checkpoint(tiny_checkpoint).eval_size == 128
    detector = Detector.from_checkpoint(tiny_checkpoint, eval_size=256, max_side=512)
    assert (detector.eval_size, detector.max_side) == (256, 512)


def test_sizes_must_fit_the_network(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="eval size must be a multiple of 32, got 1000"):
        Detector(ink_model, PostprocessConfig(), eval_size=1000)
    with pytest.raises(SystemExit, match="max side must be a multiple of 32, got 2000"):
        main(["predict", str(tiny_checkpoint), str(tmp_path), "--out", str(tmp_path / "p.csv"), "--max-side", "2000"])
