"""Torch datasets of images, decoded once into memory or decoded per item; their items batch
into the format :mod:`glow_lightning.data.base` describes.

Both hold labels as an int64 tensor and apply a ``View`` (crop/shift/flip) per item, so one
decoded split can serve training (random view) and callbacks (deterministic view).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import datasets
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from glow_lightning.data.images import ImageSpec, decode, finish, load_pixels

ViewFn = Callable[[Tensor], Tensor]
DECODE_BATCH = 1024


def raw_column(table: datasets.Dataset, column: str) -> datasets.Dataset:
    """Only ``column``, Image features left undecoded ({bytes, path}) so ``decode`` checks them."""
    table = table.select_columns([column])
    if isinstance(table.features[column], datasets.Image):
        table = table.cast_column(column, datasets.Image(decode=False))
    return table


def decode_all(table: datasets.Dataset, column: str, spec: ImageSpec, split: str) -> Tensor:
    """Every image of ``table`` as stored bins, uint8 (N, C, S, S); raises DataError on bad ones."""
    out = torch.empty((len(table), *spec.stored_shape), dtype=torch.uint8)
    side, channels = spec.stored_side - 2 * spec.pad, 1 if spec.mode == "L" else 3
    start = 0
    for batch in raw_column(table, column).iter(batch_size=DECODE_BATCH):
        values = batch[column]
        pixels = np.empty((len(values), side, side, channels), dtype=np.uint8)
        for offset, value in enumerate(values):
            pixels[offset] = load_pixels(value, spec, split, start + offset)
        out[start : start + len(values)] = finish(torch.from_numpy(pixels), spec)
        start += len(values)
    return out


class ImageSet(Dataset):
    labels: Tensor
    view: ViewFn

    def __len__(self) -> int:
        return len(self.labels)

    def with_view(self, view: ViewFn) -> ImageSet:
        """A shallow copy that applies ``view`` instead (shares the decoded data)."""
        other = copy.copy(self)
        other.view = view
        return other

    def first(self, n: int) -> tuple[Tensor, Tensor]:
        """The first ``n`` items stacked: bins uint8 (n, C, H, W), labels int64 (n,)."""
        items = [self[i] for i in range(min(n, len(self)))]
        if not items:
            return torch.empty((0,), dtype=torch.uint8), torch.empty((0,), dtype=torch.int64)
        images, labels, _ = zip(*items, strict=True)
        return torch.stack(images), torch.stack(labels)


class InMemoryImages(ImageSet):
    """Decoded bins uint8 (N, C, S, S) and labels int64 (N,) held in memory."""

    def __init__(self, bins: Tensor, labels: Tensor, view: ViewFn) -> None:
        self.bins, self.labels, self.view = bins, labels, view

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.view(self.bins[i]), self.labels[i], torch.tensor(i)


class LazyImages(ImageSet):
    """Rows ``rows`` of a Hugging Face dataset, decoded when read; errors name the split and row."""

    def __init__(self, table: datasets.Dataset, column: str, rows: Tensor, labels: Tensor,
                 spec: ImageSpec, split: str, view: ViewFn) -> None:
        self.table, self.column = raw_column(table, column), column
        self.rows, self.labels, self.spec, self.split, self.view = rows, labels, spec, split, view

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        row = int(self.rows[i])
        bins = decode(self.table[row][self.column], self.spec, self.split, row)
        return self.view(bins), self.labels[i], torch.tensor(i)
