"""The data settings: one ``DataConfig`` (keys ``data.*``), the cache's ``CacheConfig``, and their defaults.

Every image size default of the data path is here (``EVAL_SIZE``, ``CACHE_LONG_SIDE``; the training crop is
``AugmentConfig.size``). Choices are enums, converted from their config strings once, in ``DataConfig``;
everything downstream compares enum members.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ocrdet.data.check import OnBadSample
from ocrdet.data.transforms.augment import AugmentConfig
from ocrdet.data.transforms.maps import TargetConfig
from ocrdet.settings import check_input_size

EVAL_SIZE = 640
"""Side of the letterboxed square that validation and prediction feed the network."""
CACHE_LONG_SIDE = 1024
"""Images are shrunk (INTER_AREA) to at most this long side before anything else (cache, folder, shards)."""


AUTO = "auto"
"""``data.num_workers=auto``."""


class Backend(str, Enum):
    """``native``: decode and augment in DataLoader workers (libjpeg-turbo, OpenCV); ``dali``: decode, resize and
    warp in NVIDIA DALI (on the GPU when there is one), polygons and targets in the workers."""

    NATIVE = "native"
    DALI = "dali"


def _choice(enum: type[Enum], key: str, value: object) -> Enum:
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"{key} must be one of {tuple(m.value for m in enum)}, got {value!r}") from None


class CacheKey(str, Enum):
    """How a cache's key sees the source files: ``stat``, by name, size and modification time (free); ``content``,
    by a hash of their bytes (reads every image each time a cache is looked up; catches a file replaced by one of
    the same size with its time restored)."""

    STAT = "stat"
    CONTENT = "content"


@dataclass(frozen=True)
class CacheConfig:
    """Settings that change what a cache holds (all of them enter its key).

    long_side: images are shrunk (INTER_AREA) so that their long side is at most this many pixels.
    eval_size: side of the letterboxed square stored, with its maps, by a validation (``with_targets``) cache.
    targets: settings of those maps.
    key: how the source files enter the key (``CacheKey``).
    """

    long_side: int = CACHE_LONG_SIDE
    eval_size: int = EVAL_SIZE
    targets: TargetConfig = TargetConfig()
    key: CacheKey = CacheKey.STAT


@dataclass
class SynthRequest:
    """Generate a synthetic data set at ``data.root`` when it does not exist yet (0 = never)."""

    train: int = 0
    val: int = 0
    seed: int = 0
    level: str = "word"
    """``word`` or ``line`` boxes (``SynthConfig.level``)."""
    preset: str = "plain"
    """The look, a key of ``ocrdet.data.io.synth.PRESETS``."""


@dataclass
class DataConfig:
    """Where the data comes from, how it is read and what a batch item is (``data.*``)."""

    root: str = "data/synth"
    train_split: str = "train"
    val_split: str = "val"
    batch_size: int = 8
    eval_size: int = EVAL_SIZE
    num_workers: int | str = 2
    """DataLoader worker processes, or ``auto``: measured at 0..cores once (``ocrdet.data.loaders.workers``) and
    remembered beside the prepared cache; with shards or DALI, ``auto`` is the usable cores."""
    cache: bool = True
    cache_dir: str = ".ocrdet-cache"
    cache_long_side: int = CACHE_LONG_SIDE
    cache_key: CacheKey = CacheKey.STAT
    """``stat`` (names, sizes, modification times of the images) or ``content`` (a hash of their bytes)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    on_bad_sample: OnBadSample = OnBadSample.ERROR
    backend: Backend = Backend.NATIVE
    urls: str = ""
    """Training shards (``ocrdet shard``), a brace pattern of paths or ``pipe:`` commands; empty: ``root``."""
    val_urls: str = ""
    """Validation shards, as ``urls``."""
    shard_index: str = ""
    """The shards' ``index.json`` (path or URL); empty: beside the first local shard."""
    shuffle_buffer: int = 1000
    """Samples a DataLoader worker mixes when streaming shards."""

    def __post_init__(self) -> None:
        if self.num_workers != AUTO and not (isinstance(self.num_workers, int) and self.num_workers >= 0):
            raise ValueError(f"data.num_workers must be a count >= 0 or {AUTO!r}, got {self.num_workers!r}")
        self.on_bad_sample = _choice(OnBadSample, "data.on_bad_sample", self.on_bad_sample)
        self.backend = _choice(Backend, "data.backend", self.backend)
        self.cache_key = _choice(CacheKey, "data.cache_key", self.cache_key)
        check_input_size(self.eval_size, "data.eval_size")  # the checkpoint's input_size, checked alike on load
        if bool(self.urls) != bool(self.val_urls):
            raise ValueError("streaming from shards needs both data.urls and data.val_urls")
        if not (self.root or self.urls):
            raise ValueError("no data: set data.root (a data set folder) or data.urls and data.val_urls (shards)")

    def split(self, train: bool) -> str:
        """``train_split`` or ``val_split``."""
        return self.train_split if train else self.val_split

    def cache_config(self) -> CacheConfig:
        """The settings of this data's prepared caches."""
        return CacheConfig(self.cache_long_side, self.eval_size, self.targets, self.cache_key)


@dataclass
class DataSetup:
    """The data part of the training configuration: what ``ocrdet prepare`` reads."""

    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthRequest = field(default_factory=SynthRequest)


def compose_data(overrides: list[str]) -> tuple[DataSetup, list[str]]:
    """``configs/`` composed with the command-line ``overrides`` of ``ocrdet train``, as far as they concern the
    data (``data.*``, ``synth.*``, config groups such as ``data=`` and ``experiment=``), and the other overrides,
    the training's, which are not applied."""
    from ocrdet.compose import compose, is_group, override_key

    def concerns_data(override: str) -> bool:
        key = override_key(override)
        return key.split(".")[0] in ("data", "synth") or is_group(key)

    ours = [o for o in overrides if concerns_data(o)]
    return compose(DataSetup, ours), [o for o in overrides if not concerns_data(o)]
