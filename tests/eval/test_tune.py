"""Post-processing chosen on data and stored with the model: the sweep's winners land in the checkpoint, ``predict``
and the ONNX export read them back, and a command-line value still overrides them."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ocrdet.cli import main
from ocrdet.data.io.format import load_annotations
from ocrdet.eval.evaluate import ground_truth
from ocrdet.eval.sweep import parse_sweep
from ocrdet.eval.tune import DEFAULT_GRIDS, TUNED_KEY, detector_maps, store_postprocess, tune
from ocrdet.infer import Detector, load_checkpoint
from ocrdet.model.postprocess import PostprocessConfig


def kernel_model(images: np.ndarray) -> np.ndarray:
    """The probability map is the ink thinned by 4 px at top and bottom: a text kernel, as DB's maps are."""
    grey = images.mean(axis=3)
    ink = ((grey > 20) & (grey < 160)).astype(np.uint8)
    return np.stack([cv2.erode(i, np.ones((9, 1), np.uint8)) for i in ink]).astype(np.float32)[:, None]


def drawn_split(root: Path, split: str = "tune", n: int = 2) -> Path:
    """ROOT/images/<split>/page_i.png with ink bars, and their boxes as ground truth."""
    (root / "images" / split).mkdir(parents=True)
    images = {}
    for i in range(n):
        image = np.full((400, 300, 3), 255, np.uint8)
        words = {}
        for j, y in enumerate(range(30, 360, 40)):
            x1 = 150 + 20 * ((i + j) % 5)
            image[y : y + 16, 30:x1] = 60
            words[f"{j:04d}"] = {"points": [[30, y], [x1, y], [x1, y + 16], [30, y + 16]]}
        cv2.imwrite(str(root / "images" / split / f"page_{i}.png"), image)
        images[f"page_{i}.png"] = {"words": words}
    (root / "jsons").mkdir(exist_ok=True)
    (root / "jsons" / f"{split}.json").write_text(json.dumps({"images": images}))
    return root


def test_tune_picks_each_setting_from_its_grid_and_finds_the_lines(tmp_path):
    root = drawn_split(tmp_path)
    gts = ground_truth(load_annotations(root / "jsons" / "tune.json"))
    start = PostprocessConfig(unclip_ratio=2.4)
    detector = Detector(kernel_model, start, eval_size=320)
    saved = detector_maps(detector, [root / "images" / "tune" / name for name in gts])
    result = tune(saved, gts, start)
    assert [s.param for s in result.sweeps] == [parse_sweep(g)[0] for g in DEFAULT_GRIDS]
    for s in result.sweeps:
        assert getattr(result.config, s.param) == s.values[s.best]
    first = result.sweeps[0]
    assert result.hmean >= first.metrics[first.values.index(start.thresh)]["hmean"]  # 0.3 is on the default grid
    assert result.hmean == pytest.approx(1.0)


def test_stored_postprocess_round_trip(tiny_checkpoint, tmp_path):
    path = shutil.copy(tiny_checkpoint, tmp_path / "model.ckpt")
    weights = torch.load(path, weights_only=True)["state_dict"]
    chosen = PostprocessConfig(thresh=0.25, box_thresh=0.55, unclip_ratio=1.7)
    store_postprocess(path, chosen, {"data": "d", "split": "tune", "metric": "hmean", "hmean": 0.9})
    _, post, size = load_checkpoint(path)
    assert post == chosen and size == 128
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["hyper_parameters"][TUNED_KEY]["split"] == "tune"
    assert all(torch.equal(weights[k], v) for k, v in ckpt["state_dict"].items())
    assert Detector.from_checkpoint(path).postprocess == chosen  # predict uses them ...
    assert Detector.from_checkpoint(path, box_thresh=0.8).postprocess.box_thresh == 0.8  # ... unless overridden


def test_export_carries_the_tuned_postprocess(tiny_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from ocrdet.model.export import META_POSTPROCESS, export_onnx

    path = shutil.copy(tiny_checkpoint, tmp_path / "model.ckpt")
    chosen = PostprocessConfig(thresh=0.35, box_thresh=0.45, unclip_ratio=1.9)
    store_postprocess(path, chosen, {"split": "tune"})
    model, post, size = load_checkpoint(path)
    import onnx

    onnx_path = export_onnx(model, tmp_path / "model.onnx", post, size)
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert PostprocessConfig(**json.loads(meta[META_POSTPROCESS])) == chosen
    assert Detector.from_onnx(onnx_path).postprocess == chosen


def test_tune_command_rewrites_the_checkpoint(tiny_checkpoint, tmp_path, capsys):
    root = drawn_split(tmp_path / "data")
    path = shutil.copy(tiny_checkpoint, tmp_path / "model.ckpt")
    grids = ["--sweep", "thresh=0.1:0.3:0.1", "--sweep", "unclip_ratio=1.5:2.0:0.5"]
    main(["tune", str(path), "--data", str(root), "--split", "tune", *grids])
    out = capsys.readouterr().out
    assert "thresh: 0 -> " in out and "unclip_ratio: 1.5 -> " in out
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams[TUNED_KEY]["split"] == "tune" and hparams[TUNED_KEY]["data"] == str(root)
    assert hparams["postprocess"]["thresh"] in (0.1, 0.2, 0.3)
    assert asdict(load_checkpoint(path)[1]) == hparams["postprocess"]
