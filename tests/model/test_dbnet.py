import pytest
import torch

from ocrdet.model.dbnet import IMAGENET_MEAN, IMAGENET_STD, DBNet, ModelConfig
from ocrdet.model.head import step_function
from ocrdet.model.loss import DBLoss, balanced_bce

SMALL = ModelConfig(inner_channels=32, neck_channels=32)


@pytest.mark.parametrize("neck", ["fpn", "unet"])
def test_maps_have_input_resolution(neck):
    model = DBNet(ModelConfig(neck=neck, inner_channels=32, neck_channels=32))
    images = torch.randint(0, 256, (2, 96, 128, 3), dtype=torch.uint8)
    out = model.train()(images)
    assert set(out) == {"prob", "thresh", "binary"}
    assert all(v.shape == (2, 1, 96, 128) for v in out.values())
    assert set(model.eval()(images)) == {"prob"}


def test_normalization_happens_in_the_model():
    model = DBNet(SMALL)
    images = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8)
    x = model.normalize(images)
    expected = (images.permute(0, 3, 1, 2).float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected, rtol=1e-5, atol=1e-5)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_step_function_stays_fp32_under_autocast():
    prob = torch.full((1, 1, 4, 4), 0.9, dtype=torch.bfloat16)
    thresh = torch.full((1, 1, 4, 4), 0.1, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = step_function(prob, thresh, 50.0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.sigmoid(torch.tensor(50.0 * 0.8)).expand(1, 1, 4, 4), atol=1e-3, rtol=0)


def test_balanced_bce_keeps_three_negatives_per_positive():
    gt = torch.zeros(1, 1, 10)
    gt[..., 0] = 1
    mask = torch.ones_like(gt)
    pred = torch.full_like(gt, 0.5)
    pred[..., 1:4] = 0.9  # three hardest negatives
    pred[..., 0] = 0.5
    loss = balanced_bce(pred, gt, mask, negative_ratio=3.0)
    bce = torch.nn.functional.binary_cross_entropy
    expected = (bce(torch.tensor(0.5), torch.tensor(1.0)) + 3 * bce(torch.tensor(0.9), torch.tensor(0.0))) / 4
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_loss_is_finite_and_decreases_on_a_tiny_batch():
    torch.manual_seed(0)
    model = DBNet(SMALL).train()
    images = torch.randint(0, 60, (2, 64, 64, 3), dtype=torch.uint8)
    images[:, 20:40, 10:50] += 180  # the "text" is visible
    prob = torch.zeros(2, 64, 64)
    prob[:, 20:40, 10:50] = 1
    targets = {
        "prob": prob,
        "prob_mask": torch.ones(2, 64, 64),
        "thresh": torch.full((2, 64, 64), 0.3),
        "thresh_mask": torch.zeros(2, 64, 64),
    }
    targets["thresh_mask"][:, 16:44, 6:54] = 1
    targets["thresh"][:, 16:44, 6:54] = 0.5
    criterion = DBLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        parts = criterion(model(images), targets)
        assert all(torch.isfinite(v) for v in parts.values())
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
        losses.append(parts["loss"].item())
    assert losses[-1] < 0.7 * losses[0], losses
