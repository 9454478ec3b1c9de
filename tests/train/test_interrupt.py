"""Interrupted runs: Ctrl-C saves a last checkpoint at a step boundary; resuming continues where it stopped;
checkpoints are written atomically and damaged ones refused by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from ocrdet.checkpoint import CheckpointError
from ocrdet.train import checkpointing
from ocrdet.train.checkpointing import AtomicCheckpointIO, StopOnSignal

STEPS_PER_EPOCH, EPOCHS = 8, 3


class Tiny(L.LightningModule):
    """A linear model with AdamW and a per-step LambdaLR; sends itself ``signum`` at global step ``signal_at``."""

    def __init__(self, signal_at: int | None = None, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.signal_at, self.signum = signal_at, signum
        self.steps: list[tuple[int, int]] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.steps.append((self.current_epoch, self.global_step))
        if self.global_step == self.signal_at:
            os.kill(os.getpid(), self.signum)
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.parameters(), lr=0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + step))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def train_dataloader(self) -> DataLoader:
        data = torch.randn(4 * STEPS_PER_EPOCH, 4, generator=torch.Generator().manual_seed(0))
        return DataLoader(data, batch_size=4)


def _trainer(root: Path, last: Path) -> L.Trainer:
    return L.Trainer(
        max_epochs=EPOCHS,
        accelerator="cpu",
        callbacks=[StopOnSignal(last)],
        plugins=[AtomicCheckpointIO()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )


def _state(path: Path) -> tuple[int, int, float, int]:
    """(epoch, global step, AdamW's step count, scheduler's step count) stored in a checkpoint."""
    ckpt = torch.load(path, weights_only=True)
    return (
        ckpt["epoch"],
        ckpt["global_step"],
        float(ckpt["optimizer_states"][0]["state"][0]["step"]),
        ckpt["lr_schedulers"][0]["last_epoch"],
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_signal_saves_at_a_step_boundary_and_resume_continues(tmp_path: Path, signum: int) -> None:
    last = tmp_path / "last.ckpt"
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    interrupted = Tiny(signal_at=10, signum=signum)
    with pytest.raises(SystemExit) as exit_info:
        _trainer(tmp_path, last).fit(interrupted)
    assert exit_info.value.code == 1 and [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
    assert interrupted.steps[-1] == (1, 10), "the step that got the signal finishes, no further step starts"
    assert _state(last) == (1, 11, 11.0, 11)

    resumed = Tiny()
    trainer = _trainer(tmp_path, last)
    trainer.fit(resumed, ckpt_path=last)
    total = STEPS_PER_EPOCH * EPOCHS
    assert resumed.steps[0] == (1, 11) and len(resumed.steps) == total - 11
    assert trainer.global_step == total
    optimizer, scheduler = trainer.optimizers[0], trainer.lr_scheduler_configs[0].scheduler
    assert float(optimizer.state[resumed.layer.weight]["step"]) == total, "AdamW's moments continued"
    assert scheduler.last_epoch == total


def test_checkpoint_io_replaces_files_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    assert io.load_checkpoint(path)["step"] == 1

    def dies_half_way(obj: object, f) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1 and os.listdir(path.parent) == ["last.ckpt"]
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({}, path, storage_options={"a": 1})


def test_damaged_checkpoints_are_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="last.ckpt: not a readable checkpoint, truncated or damaged"):
        AtomicCheckpointIO().load_checkpoint(path)

    class Code:
        def __reduce__(self) -> tuple:
            return (print, ("this must not run",))

    torch.save({"x": Code()}, path)
    path.with_name("junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a readable checkpoint"):
        AtomicCheckpointIO().load_checkpoint(path.with_name("junk.ckpt"))
    with pytest.raises(CheckpointError, match="last.ckpt: refused, it holds more than weights and data .*GLOBAL print"):
        AtomicCheckpointIO().load_checkpoint(path)


TRAIN = """
    import sys, time
    from ocrdet.cli import main
    from ocrdet.train.module import DBNetModule

    step = DBNetModule.training_step
    def marked_step(self, batch, batch_idx):
        if self.global_step >= 2:
            open(sys.argv[1], "a").close()
            time.sleep(0.2)
        return step(self, batch, batch_idx)

    if __name__ == "__main__":
        DBNetModule.training_step = marked_step
        main(sys.argv[2:])
"""


@pytest.mark.slow
def test_ctrl_c_in_a_real_run_then_resume(tmp_path: Path) -> None:
    """``ocrdet train`` in a subprocess, SIGINT to its process group (as a terminal's Ctrl-C, DataLoader workers
    included) during step 2 of epoch 0's 6, then ``resume=true``: the run ends at the planned step count."""
    from ocrdet.data.io.synth import generate_dataset

    generate_dataset(tmp_path / "data", 12, 2, seed=0)
    script, marker, run = tmp_path / "train.py", tmp_path / "marker", tmp_path / "run"
    script.write_text(textwrap.dedent(TRAIN))
    args = [
        f"data.root={tmp_path / 'data'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"run_dir={run}",
        "data.num_workers=1",
        "data.batch_size=2",
        "data.eval_size=64",
        "data.augment.size=64",
        "model.backbone=resnet10t",
        "model.inner_channels=8",
        "model.neck_channels=8",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",
        "trainer.enable_progress_bar=false",
        "eval_workers=0",
    ]
    paths = [str(Path(__file__).resolve().parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "OCRDET_NO_TCMALLOC": "1", "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.Popen([sys.executable, script, marker, "train", *args], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 1
    last = run / "checkpoints" / "last.ckpt"
    epoch, step, adam_steps, scheduler_steps = _state(last)
    assert epoch == 0 and 3 <= step < 6 and adam_steps == scheduler_steps == step

    done = subprocess.run([sys.executable, "-m", "ocrdet.cli", "train", *args, "resume=true"], env=env, timeout=300)
    assert done.returncode == 0
    assert _state(last) == (1, 12, 12.0, 12)
    assert json.loads((run / "skipped.json").read_text()) == {"train": [], "val": []}
