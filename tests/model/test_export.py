"""ONNX export: onnxruntime reproduces the PyTorch model, and ``Detector.from_onnx`` its polygons."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ocrdet.data.transforms.targets import make_db_targets
from ocrdet.infer import Detector
from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.model.export import (
    CHECK_ATOL,
    ExportCheck,
    OnnxDBNet,
    OnnxModelError,
    export_checked,
    export_onnx,
    format_check,
)
from ocrdet.model.loss import DBLoss
from ocrdet.model.postprocess import PostprocessConfig

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

SIZE = 96
CONFIG = ModelConfig(inner_channels=32, neck_channels=64)
POST = PostprocessConfig(box_thresh=0.5, unclip_ratio=1.7)


def toy_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """uint8 (n, SIZE, SIZE, 3) light noisy pages with three dark text lines each, and their (4, 2) boxes."""
    images = np.full((n, SIZE, SIZE, 3), 215, np.uint8) + rng.integers(0, 25, (n, SIZE, SIZE, 3), dtype=np.uint8)
    boxes = []
    for image in images:
        lines = []
        for row in range(3):
            y, h = 8 + 30 * row + int(rng.integers(0, 6)), int(rng.integers(10, 15))
            x0, x1 = int(rng.integers(4, 28)), int(rng.integers(56, 92))
            image[y : y + h, x0:x1] = rng.integers(0, 60)
            lines.append(np.array([[x0, y], [x1, y], [x1, y + h], [x0, y + h]], np.float32))
        boxes.append(lines)
    return images, boxes


def tiny_trained_model() -> DBNet:
    """A DBNet whose head learned to find the toy text lines (backbone and neck stay as initialised, in eval
    mode; their features are computed once), so that its maps give polygons: a few seconds on a CPU."""
    torch.manual_seed(0)
    model = DBNet(CONFIG).eval()
    images, boxes = toy_images(np.random.default_rng(0), 6)
    maps = [make_db_targets(b, np.zeros(len(b), bool), SIZE, SIZE) for b in boxes]
    targets = {key: torch.from_numpy(np.stack([m[key] for m in maps])) for key in maps[0]}
    with torch.no_grad():
        features = model.neck(model.backbone(model.normalize(torch.from_numpy(images))))
    head, loss = model.head.train(), DBLoss()
    optimizer = torch.optim.Adam(head.parameters(), lr=2e-2)
    for _ in range(25):
        optimizer.zero_grad()
        loss(head(features), targets)["loss"].backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ExportCheck]:
    """(checkpoint, ONNX file, export check) of the tiny trained model."""
    folder = tmp_path_factory.mktemp("export")
    model = tiny_trained_model()
    checkpoint = folder / "tiny.ckpt"
    # "input_size": the key of checkpoints written before "eval_size", still read
    hparams = {"model": asdict(CONFIG), "postprocess": asdict(POST), "input_size": SIZE}
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "hyper_parameters": hparams},
        checkpoint,
    )
    return checkpoint, folder / "tiny.onnx", export_checked(model, POST, SIZE, folder / "tiny.onnx")


def test_export_is_one_file_that_matches_pytorch(exported):
    _, onnx_path, check = exported
    assert check.path == onnx_path and list(onnx_path.parent.glob("*.onnx*")) == [onnx_path]
    assert check.max_abs_diff <= CHECK_ATOL
    assert {s[0] for s in check.shapes} == {1, 2} and len({s[1:3] for s in check.shapes}) == 2
    assert str(onnx_path) in format_check(check)


def test_batch_height_and_width_are_dynamic(exported):
    checkpoint, onnx_path, _ = exported
    torch_model = Detector.from_checkpoint(checkpoint).model
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 160, 3), dtype=np.uint8)
    np.testing.assert_allclose(OnnxDBNet(onnx_path)(images), torch_model(images), atol=CHECK_ATOL, rtol=0)


def test_metadata_carries_postprocess_and_input_size(exported):
    _, onnx_path, _ = exported
    model = OnnxDBNet(onnx_path)
    assert model.postprocess == POST and model.input_size == SIZE
    detector = Detector.from_onnx(onnx_path, box_thresh=0.7)
    assert detector.postprocess.box_thresh == 0.7 and detector.postprocess.unclip_ratio == POST.unclip_ratio
    assert detector.eval_size == SIZE


def test_onnx_predictions_equal_the_pytorch_path(exported, tmp_path):
    checkpoint, onnx_path, _ = exported
    images, _ = toy_images(np.random.default_rng(7), 4)
    paths = []
    for k, image in enumerate(images):
        paths.append(tmp_path / f"toy{k}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    expected = Detector.from_checkpoint(checkpoint).detect_files(paths)
    got = Detector.from_onnx(onnx_path).detect_files(paths)
    assert sum(len(p) for p in expected.values()) >= len(paths)  # the maps do hold text regions
    for name, polygons in expected.items():
        assert len(got[name]) == len(polygons), name
        for a, b in zip(polygons, got[name], strict=True):
            assert a.shape == b.shape and np.abs(a - b).max() <= 1.0


def test_bad_files_are_named(tmp_path):
    onnx = pytest.importorskip("onnx")
    with pytest.raises(OnnxModelError, match="missing.onnx: ONNX model not found"):
        OnnxDBNet(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(OnnxModelError, match="junk.onnx: not a readable ONNX model"):
        OnnxDBNet(tmp_path / "junk.onnx")
    tensor = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "plain",
        [tensor("x", onnx.TensorProto.FLOAT, [1])],
        [tensor("y", onnx.TensorProto.FLOAT, [1])],
    )
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), tmp_path / "plain.onnx")
    with pytest.raises(OnnxModelError, match="plain.onnx: not an ocrdet ONNX export"):
        OnnxDBNet(tmp_path / "plain.onnx")
    with pytest.raises(OnnxModelError, match="input size 100 is not a multiple of 32"):
        export_onnx(DBNet(CONFIG), tmp_path / "m.onnx", POST, 100)


def test_bad_inputs_are_refused(exported):
    with pytest.raises(OnnxModelError, match="device mps: onnxruntime runs on 'cpu' or 'cuda'"):
        OnnxDBNet(exported[1], device="mps")
    model = OnnxDBNet(exported[1])
    with pytest.raises(ValueError, match="expected uint8"):
        model(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(np.zeros((1, 64, 70, 3), np.uint8))
