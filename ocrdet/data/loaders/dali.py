"""DALI backend (``data.backend=dali``): pixels in NVIDIA DALI, geometry and targets in DataLoader workers.

Split of the work, per sample:

- DataLoader workers (CPU processes) read the encoded bytes (image folder or shards), read the image size and
  EXIF orientation from the header only, draw the training warp exactly as ``DetectionDataset`` does (same
  random draws), move the polygons and compute the DB targets. None of this needs pixels, so the targets of the
  next batches are ready while the current batch is decoded and the model trains;
- DALI, in the training process, decodes (``"mixed"``: nvJPEG on the GPU when there is one, else on the CPU,
  ``device_id=None``), shrinks to ``cache_long_side`` (antialiased, like INTER_AREA), then warps with the same
  matrix to the S x S crop and applies the same brightness/contrast (training), or resizes to the letterbox
  size and pads (validation). On a GPU the batch stays there.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import simplejpeg
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ocrdet.data.check import Problem, check_dataset, usable_names
from ocrdet.data.io.decode import (
    JPEG_START,
    MAX_PIXELS,
    ImageDecodeError,
    read_image_bytes,
    read_orientation,
    too_large,
)
from ocrdet.data.io.format import load_selected, split_paths
from ocrdet.data.io.orientation import orientation_matrix
from ocrdet.data.loaders.native import AugmentRandom, DataConfig, init_worker
from ocrdet.data.loaders.shared_batch import stack_batch
from ocrdet.data.sources.shards import EncodedSample
from ocrdet.data.transforms.augment import sample_warp, transform_polygons, warp_matrix, warp_polygons
from ocrdet.data.transforms.targets import MAP_KEYS, make_db_targets

EVAL_KEYS = ("name", "polygons", "ignore", "matrix")


def upright_size(data: bytes) -> tuple[int, int, np.ndarray]:
    """(height, width) of the upright image and the 3x3 stored -> upright matrix, from the header only."""
    try:
        if data[:2] == JPEG_START:
            height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        else:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except (ValueError, UnidentifiedImageError, OSError) as exc:
        raise ImageDecodeError(f"unreadable image header: {exc}") from None
    if height * width > MAX_PIXELS:
        raise too_large(height, width)
    orientation = read_orientation(data)
    matrix = orientation_matrix(orientation, width, height)
    return (width, height, matrix) if orientation >= 5 else (height, width, matrix)


class GeometryItems:
    """One item without pixels: ``encoded`` uint8 bytes, DALI's arguments (``size1`` the shrunk upright size,
    then ``affine`` (2, 3) and ``jitter`` (alpha, beta) for training or ``size2`` the letterbox size), the
    (S, S) maps ``MAP_KEYS`` (dtypes ``MAP_DTYPES``) and the evaluation keys, as ``DetectionDataset`` gives them."""

    def __init__(self, train: bool, config: DataConfig) -> None:
        self.train, self.augment, self.targets = train, config.augment, config.targets
        self.long_side, self.eval_size = config.cache_long_side, config.eval_size
        self._random = AugmentRandom()

    def __call__(self, encoded: EncodedSample) -> dict[str, Any]:
        try:
            height, width, upright = upright_size(encoded.data)
        except ImageDecodeError as exc:
            raise ImageDecodeError(f"{encoded.name}: {exc}") from None
        ratio = min(1.0, self.long_side / max(height, width))
        h1, w1 = (max(1, round(height * ratio)), max(1, round(width * ratio))) if ratio < 1 else (height, width)
        to_image = np.diag([w1 / width, h1 / height, 1.0]) @ upright
        polygons = transform_polygons(encoded.polygons, to_image[:2])
        item: dict[str, Any] = {"encoded": np.frombuffer(encoded.data, np.uint8), "size1": np.float32([h1, w1])}
        if self.train:
            rng = self._random.get()
            matrix = warp_matrix(sample_warp(h1, w1, polygons, rng, self.augment), h1, w1)
            alpha = 1.0 + rng.uniform(-self.augment.contrast, self.augment.contrast)
            beta = rng.uniform(-self.augment.brightness, self.augment.brightness)
            polygons, kept = warp_polygons(polygons, matrix, self.augment.size)
            ignore, size, network = encoded.ignore[kept], self.augment.size, to_image
            item.update(affine=matrix.astype(np.float32), jitter=np.float32([alpha, beta]))
        else:
            scale = self.eval_size / max(h1, w1)
            polygons = transform_polygons(polygons, np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]]))
            ignore, size, network = encoded.ignore, self.eval_size, np.diag([scale, scale, 1.0]) @ to_image
            item["size2"] = np.float32([round(h1 * scale), round(w1 * scale)])
        maps = make_db_targets(polygons, ignore, size, size, self.targets)
        item.update({k: torch.from_numpy(maps[k]) for k in MAP_KEYS})
        item.update(name=encoded.name, polygons=polygons, ignore=ignore, matrix=network @ encoded.matrix)
        return item


def collate_encoded(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the maps; DALI's inputs and the evaluation keys stay per-image lists."""
    rest = {key: [it[key] for it in items] for key in items[0].keys() - set(MAP_KEYS)}
    return stack_batch({key: [it[key] for it in items] for key in MAP_KEYS}, rest)


def _pipeline(train: bool, size: int, batch_size: int, threads: int, device_id: int | None) -> Any:
    """The DALI pipeline of ``DaliLoader``: encoded bytes + per-sample geometry in, uint8 (S, S, 3) out."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=device_id, prefetch_queue_depth=1)
    def pipe() -> Any:
        encoded = fn.external_source(name="encoded", dtype=types.UINT8)
        size1 = fn.external_source(name="size1", dtype=types.FLOAT)
        decoder = "mixed" if device_id is not None else "cpu"
        image = fn.decoders.image(encoded, device=decoder, output_type=types.RGB, jpeg_fancy_upsampling=True)
        image = fn.resize(image, size=size1, antialias=True, interp_type=types.INTERP_LINEAR)
        if train:
            affine = fn.external_source(name="affine", dtype=types.FLOAT)
            jitter = fn.external_source(name="jitter", dtype=types.FLOAT)
            image = fn.warp_affine(
                image,
                matrix=affine,
                size=[size, size],
                fill_value=0,
                inverse_map=False,
                interp_type=types.INTERP_LINEAR,
            )
            return fn.brightness_contrast(image, brightness=jitter[0], brightness_shift=jitter[1], contrast=1.0)
        size2 = fn.external_source(name="size2", dtype=types.FLOAT)
        image = fn.resize(image, size=size2, antialias=True, interp_type=types.INTERP_LINEAR)
        return fn.pad(image, axes=(0, 1), shape=[size, size], fill_value=0)

    return pipe()


class DaliLoader:
    """Batches of ``loader`` (``GeometryItems`` collated by ``collate_encoded``) with their ``image`` made by
    DALI: the keys of ``ocrdet.data.loaders.native.collate``; on a GPU the images are CUDA tensors already."""

    def __init__(self, loader: Iterable[dict[str, Any]], train: bool, size: int, batch_size: int, threads: int) -> None:
        self.loader, self.train, self.size, self.batch_size, self.threads = loader, train, size, batch_size, threads
        self._pipe: Any = None

    @property
    def dataset(self) -> Any:
        """The wrapped loader's (Lightning inspects ``dataset``, ``sampler`` and ``batch_sampler``, and sets the
        sampler's epoch; it adds no sampler of its own to what is not a DataLoader)."""
        return getattr(self.loader, "dataset", None)

    @property
    def sampler(self) -> Any:
        return getattr(self.loader, "sampler", None)

    @property
    def batch_sampler(self) -> Any:
        return getattr(self.loader, "batch_sampler", None)

    def __len__(self) -> int:
        return len(self.loader)

    def _images(self, batch: dict[str, Any]) -> torch.Tensor:
        from nvidia.dali.plugin.pytorch import feed_ndarray

        if self._pipe is None:
            device_id = torch.cuda.current_device() if torch.cuda.is_available() else None
            self._pipe = _pipeline(self.train, self.size, self.batch_size, self.threads, device_id)
            self._pipe.build()
        names = ("encoded", "size1", "affine", "jitter") if self.train else ("encoded", "size1", "size2")
        for name in names:
            self._pipe.feed_input(name, batch[name])
        (images,) = self._pipe.run()
        on_gpu = self._pipe.device_id is not None
        shape = (len(batch["encoded"]), self.size, self.size, 3)
        out = torch.empty(shape, dtype=torch.uint8, device=f"cuda:{self._pipe.device_id}" if on_gpu else "cpu")
        stream = torch.cuda.current_stream(out.device) if on_gpu else None
        feed_ndarray(images.as_tensor(), out, cuda_stream=stream)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for batch in self.loader:
            out = {"image": self._images(batch), **{k: batch[k] for k in (*MAP_KEYS, *EVAL_KEYS)}}
            yield {**out, "skipped": []}


def dali_loader(loader: Iterable[dict[str, Any]], train: bool, config: DataConfig) -> DaliLoader:
    """``loader`` of geometry items -> DaliLoader with the crop / letterbox size and batch size of ``config``."""
    size = config.augment.size if train else config.eval_size
    return DaliLoader(loader, train, size, config.loader_batch_size(train), max(1, config.num_workers))


class EncodedFolder(Dataset):
    """``ROOT/images/<split>/`` as encoded samples (file bytes, stored-frame polygons) made into items by ``items``;
    only ``names`` (the images the data check kept) when given, else every annotated image."""

    def __init__(self, root: str | Path, split: str, items: GeometryItems, names: Sequence[str] | None = None) -> None:
        self.image_dir, json_path = split_paths(root, split)
        images = load_selected(json_path, names)
        self.names = list(images)
        self.annotations = [annotation.polygons() for annotation in images.values()]
        self.items = items

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        data = read_image_bytes(self.image_dir / name)
        polygons, ignore = self.annotations[index]
        return self.items(EncodedSample(data, polygons, ignore, name, np.eye(3), str(index)))


class DaliFolderDataModule(L.LightningDataModule):
    """Training and validation from the image folders through DALI; ranks split the data with a
    DistributedSampler (validation pads with repeats, which the metric counts once)."""

    def __init__(self, config: DataConfig, root: str | Path) -> None:
        super().__init__()
        self.config, self.root = config, Path(root)
        self.reports = {split: check_dataset(root, split) for split in (config.train_split, config.val_split)}
        self.usable = {split: usable_names(r, config.on_bad_sample) for split, r in self.reports.items()}
        """Per split, the images the data check keeps (``on_bad_sample``); DataCheckError before training."""

    def skipped(self) -> dict[str, list[Problem]]:
        """Per split, the images the data check left out (``on_bad_sample=skip``)."""
        return {split: list(report.errors) for split, report in self.reports.items()}

    def _loader(self, split: str, train: bool) -> DaliLoader:
        c = self.config
        dataset = EncodedFolder(self.root, split, GeometryItems(train, c), self.usable[split])
        batch_size = c.loader_batch_size(train)
        trainer, sampler = self.trainer, None
        if trainer is not None and trainer.world_size > 1:
            rank, world = trainer.global_rank, trainer.world_size
            sampler = DistributedSampler(dataset, world, rank, shuffle=train, drop_last=train)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            drop_last=train and len(dataset) >= batch_size,
            num_workers=c.num_workers,
            persistent_workers=c.num_workers > 0,
            collate_fn=collate_encoded,
            worker_init_fn=init_worker,
        )
        return dali_loader(loader, train, c)

    def train_dataloader(self) -> DaliLoader:
        return self._loader(self.config.train_split, train=True)

    def val_dataloader(self) -> DaliLoader:
        return self._loader(self.config.val_split, train=False)
