"""Precision and speed switches: fp32 step function and sigmoids under autocast, bf16-mixed training,
gradient checkpointing, channels_last, torch.compile."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.model.head import DBHead, step_function
from ocrdet.train.module import DBNetModule

K = 50.0
SMALL = ModelConfig(inner_channels=16, neck_channels=16)


def naive_step(prob: torch.Tensor, thresh: torch.Tensor, k: float) -> torch.Tensor:
    """The DB paper's formula as the original project computed it, in the inputs' dtype."""
    return torch.reciprocal(1 + torch.exp(-k * (prob - thresh)))


def test_naive_fp16_step_function_breaks_where_ours_does_not():
    # P - T from -0.9 to 0.9: exp(-k (P - T)) exceeds fp16's 65504 once P - T < -0.22.
    prob = torch.linspace(0.05, 0.95, 19, dtype=torch.float16)
    thresh = prob.flip(0).clone()
    reference = torch.sigmoid(K * (prob.double() - thresh.double()))

    naive_prob = prob.clone().requires_grad_()
    naive = naive_step(naive_prob, thresh, K)
    naive.sum().backward()
    assert torch.isinf(torch.exp(-K * (prob - thresh))).any()
    assert torch.isnan(naive_prob.grad).any()  # inf / inf in the backward pass: one NaN poisons the step

    our_prob = prob.clone().requires_grad_()
    ours = step_function(our_prob, thresh, K)
    ours.sum().backward()
    assert ours.dtype == torch.float32 and torch.isfinite(our_prob.grad).all()
    torch.testing.assert_close(ours.double(), reference, atol=1e-6, rtol=0)
    expected_grad = K * reference * (1 - reference)
    torch.testing.assert_close(our_prob.grad.double(), expected_grad, atol=1e-3, rtol=1e-3)


def test_step_function_under_autocast_is_the_fp32_computation():
    torch.manual_seed(0)
    prob, thresh = torch.rand(2, 1, 8, 8).bfloat16(), torch.rand(2, 1, 8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = step_function(prob, thresh, K)
        naive = torch.sigmoid(K * (prob - thresh))
    exact = torch.sigmoid(K * (prob.float() - thresh.float()))
    assert ours.dtype == torch.float32
    assert torch.equal(ours, exact)
    # In bf16 the map saturates: exactly 1 (no gradient left) where the fp32 value still has one to give.
    assert naive.dtype == torch.bfloat16 and ((naive == 1) & (exact < 0.999)).any()


def test_head_sigmoids_do_not_saturate_in_bf16():
    torch.manual_seed(0)
    head = DBHead(16, K).train()
    torch.nn.init.zeros_(head.prob[-1].weight)
    torch.nn.init.constant_(head.prob[-1].bias, 7.0)  # confident "text" everywhere: sigmoid(7) = 0.99909
    features = torch.randn(1, 16, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(features)
        logits = head.prob(features)
    assert all(v.dtype == torch.float32 for v in out.values())
    assert logits.dtype == torch.bfloat16 and (torch.sigmoid(logits) == 1).all()  # what a bf16 sigmoid gives

    # On a background pixel BCE must push the confident mistake down; the loss clamps to [1e-6, 1 - 1e-6].
    background = torch.zeros(1, 1, 16, 16)
    naive = torch.sigmoid(logits).float().detach().requires_grad_()
    F.binary_cross_entropy(naive.clamp(1e-6, 1 - 1e-6), background).backward()
    assert (naive.grad == 0).all()
    ours = out["prob"].detach().requires_grad_()
    F.binary_cross_entropy(ours.clamp(1e-6, 1 - 1e-6), background).backward()
    assert (ours < 1).all() and (ours.grad > 0).all()


def toy_batches(n: int, size: int = 64) -> list[dict[str, object]]:
    """Items of the shape the DataModule gives: uint8 image with a bright "word", its DB maps, a name."""
    items = []
    for k in range(n):
        image = torch.full((size, size, 3), 40, dtype=torch.uint8)
        image[20:36, 8 + k : 56] = 220
        prob = torch.zeros(size, size)
        prob[22:34, 10 + k : 54] = 1
        thresh_mask = torch.zeros(size, size)
        thresh_mask[16:40, 4 + k : 60] = 1
        items.append(
            {
                "image": image,
                "prob": prob,
                "prob_mask": torch.ones(size, size),
                "thresh": 0.3 + 0.4 * thresh_mask,
                "thresh_mask": thresh_mask,
                "name": f"toy{k}.png",
            }
        )
    return items


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def test_bf16_mixed_trains_with_finite_loss_and_fp32_maps():
    torch.manual_seed(0)
    module = DBNetModule(SMALL, eval_workers=0)
    before = [p.detach().clone() for p in module.parameters()]
    recorder = LossRecorder()
    trainer = L.Trainer(
        accelerator="cpu",
        precision="bf16-mixed",
        max_steps=3,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(module, DataLoader(toy_batches(6), batch_size=2))
    assert trainer.precision == "bf16-mixed"
    assert len(recorder.losses) == 3 and all(torch.isfinite(torch.tensor(recorder.losses)))
    assert all(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True) if a.ndim == 4)

    images = torch.stack([item["image"] for item in toy_batches(2)])
    module.model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module.model(images)
    assert all(v.dtype == torch.float32 for v in out.values())
    assert torch.equal(out["binary"], step_function(out["prob"], out["thresh"], SMALL.k))


def test_grad_checkpointing_saves_memory_recomputes_and_gives_the_same_gradients():
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    grads, calls, saved_bytes = [], [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = DBNet(ModelConfig(inner_channels=16, neck_channels=16, grad_checkpointing=checkpointing)).train()
        count, saved = [0], []
        model.backbone.body.layer2.register_forward_pre_hook(lambda *_, n=count: n.__setitem__(0, n[0] + 1))

        def pack(tensor: torch.Tensor, saved: list[int] = saved) -> torch.Tensor:
            saved.append(tensor.numel() * tensor.element_size())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = model(images)
        sum(v.mean() for v in out.values()).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
        calls.append(count[0])
        saved_bytes.append(sum(saved))
    assert calls == [1, 2]  # with checkpointing, layer2 runs again in the backward pass ...
    assert saved_bytes[1] < 0.8 * saved_bytes[0]  # ... because its activations were not kept for it
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_channels_last_switch_changes_memory_not_results():
    torch.manual_seed(0)
    nhwc = DBNet(SMALL).eval()
    nchw = DBNet(ModelConfig(inner_channels=16, neck_channels=16, channels_last=False)).eval()
    nchw.load_state_dict(nhwc.state_dict())
    conv = nhwc.backbone.body.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert nchw.backbone.body.conv1.weight.is_contiguous()
    images = torch.randint(0, 256, (1, 64, 96, 3), dtype=torch.uint8)
    assert nhwc.normalize(images).is_contiguous(memory_format=torch.channels_last)
    assert nchw.normalize(images).is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(nhwc(images)["prob"], nchw(images)["prob"], atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_compiled_model_matches_eager():
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    module = DBNetModule(SMALL, compile=True).eval()
    eager = DBNet(SMALL).eval()
    eager.load_state_dict(module.model.state_dict())
    images = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8)
    counters.clear()
    with torch.no_grad():
        torch.testing.assert_close(module(images)["prob"], eager(images)["prob"], atol=1e-4, rtol=1e-4)
    assert counters["stats"]["unique_graphs"] >= 1  # torch.compile did capture the model
