"""INT8 export: calibrated on real images, metadata kept, close to fp32, and the H-mean check at export."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_export import CONFIG, POST, SIZE, tiny_trained_model, toy_images

from ocrdet.cli import main
from ocrdet.model.export import OnnxDBNet, OnnxModelError, export_checked
from ocrdet.model.quantize import calibration_images, export_int8, quantize_int8

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _toy_root(root: Path, n_train: int = 6, n_val: int = 4) -> Path:
    """ROOT/images/{train,val}/*.png toy pages, ROOT/jsons/val.json their text lines."""
    for split, n, seed in (("train", n_train, 3), ("val", n_val, 4)):
        if n == 0:
            continue
        images, boxes = toy_images(np.random.default_rng(seed), n)
        folder = root / "images" / split
        folder.mkdir(parents=True)
        words = {}
        for k, (image, lines) in enumerate(zip(images, boxes, strict=True)):
            cv2.imwrite(str(folder / f"{k}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            words[f"{k}.png"] = {"words": {f"{j}": {"points": b.tolist()} for j, b in enumerate(lines)}}
        if split == "val":
            (root / "jsons").mkdir()
            (root / "jsons" / "val.json").write_text(json.dumps({"images": words}))
    return root


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("int8")
    return export_checked(tiny_trained_model(), POST, SIZE, folder / "fp32.onnx").path


def test_int8_model_is_quantized_keeps_metadata_and_follows_fp32(fp32, tmp_path):
    root = _toy_root(tmp_path / "data")
    images = calibration_images(root, SIZE)
    assert len(images) == 6 and all(i.shape == (SIZE, SIZE, 3) and i.dtype == np.uint8 for i in images)
    int8_path = quantize_int8(fp32, tmp_path / "int8.onnx", images)
    ops = {node.op_type for node in onnx.load(str(int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8, reference = OnnxDBNet(int8_path), OnnxDBNet(fp32)
    assert (int8.postprocess, int8.input_size) == (POST, SIZE)
    test_images, _ = toy_images(np.random.default_rng(9), 2)
    difference = np.abs(int8(test_images) - reference(test_images))
    assert difference.mean() < 0.02 and difference.max() < 0.5


def test_export_int8_keeps_a_model_within_the_tolerance(fp32, tmp_path, monkeypatch):
    root = _toy_root(tmp_path / "data")
    scores = iter([0.800, 0.796])  # fp32, then INT8: 0.004 lower
    monkeypatch.setattr("ocrdet.model.quantize.split_hmean", lambda path, root: next(scores))
    check = export_int8(fp32, tmp_path / "out" / "m.onnx", root, SIZE)
    assert check.path.is_file() and check.calibration_images == 6
    assert (check.fp32_hmean, check.int8_hmean) == (0.800, 0.796)


def test_export_int8_refuses_a_model_that_loses_hmean(fp32, tmp_path, monkeypatch):
    root = _toy_root(tmp_path / "data")
    scores = iter([0.80, 0.79])  # fp32, then INT8: 0.01 lower
    monkeypatch.setattr("ocrdet.model.quantize.split_hmean", lambda path, root: next(scores))
    with pytest.raises(OnnxModelError, match=r"m.onnx: not written: INT8 H-mean 0.7900 .* fp32's 0.8000"):
        export_int8(fp32, tmp_path / "m.onnx", root, SIZE)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow  # a second export and a quantization: about 1-3 minutes on 2 shared cores
def test_export_command_int8(tmp_path, capsys):
    model = tiny_trained_model()
    checkpoint = tmp_path / "tiny.ckpt"
    hparams = {"model": asdict(CONFIG), "postprocess": asdict(POST), "input_size": SIZE}
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": hparams}, checkpoint)
    out = tmp_path / "m.onnx"
    with pytest.raises(SystemExit, match="give --calibrate DATA_ROOT"):
        main(["export", str(checkpoint), "--onnx", str(out), "--int8"])
    with pytest.raises(SystemExit, match="--calibrate only goes with --int8"):
        main(["export", str(checkpoint), "--onnx", str(out), "--calibrate", str(tmp_path)])
    root = _toy_root(tmp_path / "data", n_val=0)
    with pytest.raises(SystemExit, match="none/images/train: no calibration images"):
        main(["export", str(checkpoint), "--onnx", str(out), "--int8", "--calibrate", str(tmp_path / "none")])
    capsys.readouterr()
    main(["export", str(checkpoint), "--onnx", str(out), "--int8", "--calibrate", str(root)])
    text = capsys.readouterr().out
    assert "max |prob difference|" in text  # the fp32 export was checked first
    assert f"wrote INT8 model {out} (calibrated on 6 images); H-mean not checked (no val split" in text
    assert OnnxDBNet(out).input_size == SIZE
