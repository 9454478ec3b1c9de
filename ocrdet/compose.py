"""Hydra at the edge: ``configs/`` (YAML groups that set what differs) and command-line overrides composed on top
of the defaults of a tree of settings dataclasses, then turned back into that tree, so components never see a
config dict.

``ocrdet.train.config.TrainConfig`` is the whole tree (``ocrdet train``); ``ocrdet.data.config.DataSetup`` is the
part of it that ``ocrdet prepare`` reads, composed without the training's modules.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
T = TypeVar("T")


def build(cls: type[T], values: dict[str, Any]) -> T:
    """A resolved plain dict (``OmegaConf.to_container``) -> the dataclass ``cls``, nested dataclasses built too;
    keys that are not fields of ``cls`` are left out."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, hint = values[f.name], hints[f.name]
        if dataclasses.is_dataclass(hint):
            value = build(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def compose(schema: type[T], overrides: list[str]) -> T:
    """Compose ``configs/config.yaml`` on ``schema()``'s defaults with command-line style overrides
    (``data.batch_size=4``, ``experiment=demo``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    ConfigStore.instance().store(name="ocrdet_defaults", node=dataclasses.asdict(schema()))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=overrides)
    return build(schema, OmegaConf.to_container(cfg, resolve=True))


def override_key(override: str) -> str:
    """The dotted key of a command-line override: ``data.root`` of ``+data.root=x``, ``experiment`` of
    ``experiment=demo``."""
    return override.lstrip("+~").split("=", 1)[0]


def is_group(key: str) -> bool:
    """Whether ``key`` names a config group (a folder of ``configs/``: data, experiment, model, trainer)."""
    return "." not in key and (CONFIG_DIR / key).is_dir()
