"""The LightningModule: connects DBNet, the DB loss, post-processing and the H-mean metric."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch

from ocrdet.data.config import EVAL_SIZE
from ocrdet.eval.evaluate import BackgroundEvaluator, Counts, GroundTruth, total
from ocrdet.model.dbnet import DBNet, ModelConfig
from ocrdet.model.loss import DBLoss, LossWeights
from ocrdet.model.postprocess import PostprocessConfig
from ocrdet.settings import check_settings


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50

    def __post_init__(self) -> None:
        check_settings(self, "optim", {"lr": (0.0, 10.0), "weight_decay": (0.0, 10.0), "warmup_steps": (0, 10**9)})


def gather_per_image(per_image: dict[str, Counts]) -> dict[str, Counts]:
    """{image name: counts} of every DDP rank merged (this rank's alone when not distributed).

    An image scored on two ranks (a DistributedSampler pads the last round with repeats) is kept once, so
    the sum of the merged counts is the single-process sum.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return per_image
    parts: list[dict[str, Counts] | None] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, per_image)
    return {name: counts for part in parts for name, counts in part.items()}


class DBNetModule(L.LightningModule):
    """Training: loss on uint8 batches. Validation: probability maps go to background workers that
    post-process and count matches while the model runs the next batch; the metric is computed once
    per epoch from per-image counts gathered from all ranks (each image once) and summed."""

    def __init__(
        self,
        model: ModelConfig = ModelConfig(),
        loss: LossWeights = LossWeights(),
        optim: OptimConfig = OptimConfig(),
        postprocess: PostprocessConfig = PostprocessConfig(),
        eval_size: int = EVAL_SIZE,
        eval_workers: int = 1,
        compile: bool = False,
        val_ground_truth: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "model": asdict(model),
                "loss": asdict(loss),
                "optim": asdict(optim),
                "postprocess": asdict(postprocess),
                "eval_size": eval_size,
            }
        )
        self.model = DBNet(model)
        if compile:
            self.model.compile()  # in place: checkpoints keep the plain ``model.*`` keys
        self.loss = DBLoss(loss)
        self.optim = optim
        self.postprocess = postprocess
        self.eval_workers = eval_workers
        self.val_ground_truth = val_ground_truth
        """The validation split's annotation file: with it, the metric is computed as ``ocrdet predict`` +
        ``ocrdet evaluate`` compute it (stored frame, CSV rounding, the file's polygons and transcriptions)."""
        self._gt: dict[str, GroundTruth] | None = None
        self._evaluator: BackgroundEvaluator | None = None
        self._val_names: list[str] = []
        """Names of the images submitted this validation epoch, in order."""
        self._said_network_frame = False

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(images)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.loss(self(batch["image"]), batch)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False, batch_size=len(batch["name"]))
        self.log("loss", losses["loss"], prog_bar=True, logger=False, batch_size=len(batch["name"]))
        return losses["loss"]

    @property
    def evaluator(self) -> BackgroundEvaluator:
        if self._evaluator is None:
            self._evaluator = BackgroundEvaluator(self.postprocess, workers=self.eval_workers)
        return self._evaluator

    def on_validation_epoch_start(self) -> None:
        self.evaluator.reset()
        self._val_names = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        prob = self(batch["image"])["prob"][:, 0].float().cpu().numpy()  # float32, as predict post-processes
        ground_truth = self.ground_truth if self.val_ground_truth is not None else None
        if not self.evaluator.submit_validation(prob, batch, ground_truth) and not self._said_network_frame:
            self._said_network_frame = True
            print(
                "validation: no annotation file lists these images (streamed shards): val/* are scored in the"
                f" {prob.shape[-1]}x{prob.shape[-2]} network frame against the shards' polygons, not in the stored"
                " frame as `ocrdet predict` + `ocrdet evaluate` score them",
                file=sys.stderr,
            )
        self._val_names += list(batch["name"])

    @property
    def ground_truth(self) -> dict[str, GroundTruth]:
        if self._gt is None:
            from ocrdet.eval.files import read_annotation_polygons

            self._gt = read_annotation_polygons(self.val_ground_truth) if self.val_ground_truth else {}
        return self._gt

    def on_validation_epoch_end(self) -> None:
        per_image = dict(zip(self._val_names, self.evaluator.per_image(), strict=True))
        summed = total(list(gather_per_image(per_image).values()), self.evaluator.metric)
        for key, value in summed.metrics().items():
            value = torch.tensor(float(value), dtype=torch.float64)  # float32 (Lightning's default) loses digits
            self.log(f"val/{key}", value, prog_bar=key == "hmean", sync_dist=False, rank_zero_only=False)

    def on_fit_end(self) -> None:
        if self._evaluator is not None:
            self._evaluator.close()
            self._evaluator = None

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.optim.warmup_steps, total // 4)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, 1 - (step - warmup) / max(total - warmup, 1)) ** 0.9

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
