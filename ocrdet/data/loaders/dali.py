"""DALI backend (``data.backend=dali``): pixels in NVIDIA DALI, geometry and targets in DataLoader workers.

Split of the work, per sample:

- DataLoader workers (CPU processes) read the encoded bytes (image folder or shards), read the image size and
  EXIF orientation from the header only, draw the item's ``TrainDraw`` (``ocrdet.data.transforms.item``, the
  same draw the native path applies), move the polygons and compute the DB targets. None of this needs
  pixels, so the targets of the next batches are ready while the current batch is decoded and the model trains;
- DALI, in the training process, decodes (``"mixed"``: nvJPEG on the GPU when there is one, else on the CPU,
  ``device_id=None``), shrinks to ``cache_long_side`` (antialiased, like INTER_AREA), then warps with the same
  matrix to the S x S crop and applies the same colour steps (``augment.COLOUR_OPS``, training), or resizes to
  the letterbox size and pads (validation). On a GPU the batch stays there.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import simplejpeg
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ocrdet.data.config import DataConfig
from ocrdet.data.io.decode import (
    JPEG_START,
    MAX_PIXELS,
    ImageDecodeError,
    orientation_matrix,
    read_orientation,
    too_large,
)
from ocrdet.data.loaders.native import loader_batch_size, stack_batch
from ocrdet.data.sources.base import EncodedSample
from ocrdet.data.sources.folder import FolderSource
from ocrdet.data.transforms.augment import COLOUR_OPS, transform_polygons
from ocrdet.data.transforms.item import Items, train_labels, val_labels
from ocrdet.data.transforms.maps import MAP_KEYS

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
    then for training ``affine`` (2, 3) and, named after each ``COLOUR_OPS`` step, its float32 parameters of the
    item's ``TrainDraw``; for validation ``size2`` the letterbox size), and the labels of
    ``ocrdet.data.transforms.item`` (maps and evaluation keys)."""

    def __init__(self, train: bool, config: DataConfig) -> None:
        self.train, self.targets = train, config.targets
        self.long_side, self.eval_size = config.cache_long_side, config.eval_size
        self.items = Items(train, config.augment, config.targets, config.eval_size)

    def __call__(self, encoded: EncodedSample) -> dict[str, Any]:
        try:
            height, width, upright = upright_size(encoded.data)
        except ImageDecodeError as exc:
            raise ImageDecodeError(f"{encoded.name}: {exc}") from None
        ratio = min(1.0, self.long_side / max(height, width))
        h1, w1 = (max(1, round(height * ratio)), max(1, round(width * ratio))) if ratio < 1 else (height, width)
        to_image = np.diag([w1 / width, h1 / height, 1.0]) @ upright
        polygons = transform_polygons(encoded.polygons, to_image[:2])
        matrix = to_image @ encoded.matrix
        item: dict[str, Any] = {"encoded": np.frombuffer(encoded.data, np.uint8), "size1": np.float32([h1, w1])}
        if self.train:
            draw = self.items.draw(h1, w1, polygons)
            item["affine"] = draw.matrix.astype(np.float32)
            item.update({op.name: np.float32(params) for op, params in zip(COLOUR_OPS, draw.colour, strict=True)})
            return item | train_labels(encoded.name, polygons, encoded.ignore, matrix, draw, self.targets)
        scale = self.eval_size / max(h1, w1)
        item["size2"] = np.float32([round(h1 * scale), round(w1 * scale)])
        return item | val_labels(encoded.name, polygons, encoded.ignore, matrix, scale, self.eval_size, self.targets)


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
            image = fn.warp_affine(
                image,
                matrix=affine,
                size=[size, size],
                fill_value=0,
                inverse_map=False,
                interp_type=types.INTERP_LINEAR,
            )
            for op in COLOUR_OPS:
                image = op.dali(image, fn.external_source(name=op.name, dtype=types.FLOAT))
            return image
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
        colour = tuple(op.name for op in COLOUR_OPS)
        names = ("encoded", "size1", "affine", *colour) if self.train else ("encoded", "size1", "size2")
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
    return DaliLoader(loader, train, size, loader_batch_size(config, train), max(1, config.num_workers))


class EncodedFolder(Dataset):
    """A ``FolderSource``'s samples undecoded (``FolderSource.encoded``), made into items by ``items``."""

    def __init__(self, source: FolderSource, items: GeometryItems) -> None:
        self.source, self.items = source, items

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items(self.source.encoded(index))
