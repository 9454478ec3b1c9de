"""What ``ocrdet train --help`` (and ``prepare --help``) adds below the usage: the config groups and their
options, the most used keys with their defaults, and examples. ``ocrdet config show`` prints the whole tree."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

from ocrdet.compose import CONFIG_DIR
from ocrdet.train.config import TrainConfig, compose

COMMON_KEYS = {
    "data.root": "the data set folder: ROOT/images/<split>/*.jpg and ROOT/jsons/<split>.json",
    "data.train_split": "split trained on",
    "data.val_split": "split validated on",
    "data.batch_size": "training batch size (validation batches are half as large)",
    "data.num_workers": "DataLoader worker processes",
    "data.eval_size": "side of the square the model sees at validation (stored in the checkpoint for predict)",
    "data.augment.size": "side of the square training crops",
    "data.cache": "decode once into the shared cache in data.cache_dir (false: read the image folder every epoch)",
    "data.cache_dir": "where prepared caches live (one subfolder per data set and settings)",
    "data.on_bad_sample": "error: stop with the list of bad images; skip: train on the rest (run_dir/skipped.json)",
    "model.backbone": "any timm model that supports features_only (resnet18, resnet34, convnext_tiny, ...)",
    "model.pretrained": "download ImageNet weights for the backbone before training (needs the network)",
    "optim.lr": "peak AdamW learning rate (linear warm-up over optim.warmup_steps, then cosine decay)",
    "postprocess.box_thresh": "minimum mean probability inside a detected polygon",
    "trainer.max_epochs": "epochs to train",
    "trainer.precision": "32-true, bf16-mixed or 16-mixed",
    "trainer.accelerator": "auto, cpu or gpu",
    "run_dir": "where checkpoints/, logs/, tb/ and config.json are written",
    "resume": "continue from run_dir/checkpoints/last.ckpt (true) or start afresh (false)",
    "seed": "seed of every random choice (data order, augmentation, initial weights)",
}
"""Key -> one line; the defaults shown are read from the composed config, so they are never out of date."""

EXAMPLES = """\
examples:
  ocrdet train data=synth trainer.max_epochs=3
  ocrdet train data=sroie data.root=/path/to/sroie model.backbone=resnet34 trainer.precision=bf16-mixed
  ocrdet train run_dir=runs/a resume=true
  ocrdet config show data=sroie          # every key of the composed config with its value"""


def config_groups() -> dict[str, list[str]]:
    """Group name -> the options it offers (``configs/<group>/<option>.yaml``)."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(CONFIG_DIR.iterdir()) if d.is_dir()}


def lookup(config: TrainConfig, key: str) -> Any:
    """The value of a dotted key such as ``data.augment.size``."""
    value: Any = dataclasses.asdict(config)
    for part in key.split("."):
        value = value[part]
    return value


def shown(value: Any) -> str:
    """A default as it is written in an override: ``true``, ``error``, ``null``."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def config_yaml(config: TrainConfig) -> str:
    """``ocrdet config show``: every key with its value as an override would write it (enums by value)."""
    from omegaconf import OmegaConf

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value.value if isinstance(value, Enum) else value

    return OmegaConf.to_yaml(plain(dataclasses.asdict(config)))


def config_help() -> str:
    """The text below ``ocrdet train --help``'s usage."""
    defaults = compose([])
    groups = [f"  {name}={'|'.join(options)}" for name, options in config_groups().items()]
    width = max(map(len, COMMON_KEYS))
    keys = [f"  {key:<{width}}  {text} (default: {shown(lookup(defaults, key))})" for key, text in COMMON_KEYS.items()]
    return "\n".join(
        [
            "overrides are Hydra's KEY=VALUE (any key of `ocrdet config show`) and GROUP=OPTION:",
            "",
            "config groups (configs/<group>/<option>.yaml):",
            *groups,
            "",
            "most used keys:",
            *keys,
            "",
            EXAMPLES,
        ]
    )
