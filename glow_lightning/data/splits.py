"""Turn (train, test) Hugging Face datasets into checked train / val / test image sets.

Small data (decoded size within ``MEMORY_BUDGET``) is decoded once into a uint8 tensor, which
checks every image eagerly; large data is decoded per item, after checking the first image of
each split. ``val_size`` images are held out of train, chosen by ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import torch
from torch import Tensor

from glow_lightning.data.columns import count_classes, image_column, label_column, read_labels
from glow_lightning.data.errors import DataError
from glow_lightning.data.image_sets import (
    ImageSet,
    InMemoryImages,
    LazyImages,
    decode_all,
    raw_column,
)
from glow_lightning.data.images import ImageSpec, decode
from glow_lightning.data.views import View

MEMORY_BUDGET = 1 << 30  # bytes of decoded uint8 images kept in memory by default


@dataclass(frozen=True)
class Columns:
    """Requested (None: dataset default) and default image / label column names."""

    image: str | None
    label: str | None
    default_image: str
    default_label: str | None


@dataclass
class Splits:
    """Image sets ready for loaders; ``val`` is None when ``val_size`` is 0."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    num_classes: int
    val_rows: Tensor  # rows of the source train split held out for validation, sorted


def holdout(n: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train_rows, val_rows), sorted int64: ``val_size`` rows of ``range(n)`` drawn by ``seed``."""
    if not 0 <= val_size < n:
        raise DataError(
            f"val_size={val_size} must lie in [0, {n}) for a train split of {n} images; "
            "lower data.val_size"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def fits_in_memory(n_images: int, spec: ImageSpec, budget: int = MEMORY_BUDGET) -> bool:
    """Whether ``n_images`` decoded images of ``spec`` fit within ``budget`` bytes."""
    return n_images * math.prod(spec.stored_shape) <= budget


def build_splits(train: datasets.Dataset, test: datasets.Dataset, spec: ImageSpec,
                 columns: Columns, val_size: int, seed: int, in_memory: bool | None) -> Splits:
    """Check the tables and build image sets; see the module docstring."""
    for name, table in (("train", train), ("test", test)):
        if len(table) == 0:
            raise DataError(f"the {name} split is empty; point data.source= at data with images "
                            "in it, or raise data.max_train / data.max_test")
    img_cols = [image_column(t, columns.image, columns.default_image, s)
                for s, t in (("train", train), ("test", test))]
    lab_cols = [label_column(t, columns.label, columns.default_label, s)
                for s, t in (("train", train), ("test", test))]
    train_labels, test_labels = read_labels(train, lab_cols[0]), read_labels(test, lab_cols[1])
    num_classes = max(count_classes(train, lab_cols[0], train_labels),
                      count_classes(test, lab_cols[1], test_labels))
    train_rows, val_rows = holdout(len(train), val_size, seed)
    if in_memory is None:
        in_memory = fits_in_memory(len(train) + len(test), spec)
    make = _in_memory_sets if in_memory else _lazy_sets
    train_set, val_set = make(train, img_cols[0], train_labels, spec, "train",
                              (train_rows, val_rows))
    (test_set,) = make(test, img_cols[1], test_labels, spec, "test", (torch.arange(len(test)),))
    return Splits(train_set.with_view(View(spec, train=True)),
                  val_set if val_size else None, test_set, num_classes, val_rows)


def _in_memory_sets(table: datasets.Dataset, column: str, labels: Tensor, spec: ImageSpec,
                    split: str, row_groups: tuple[Tensor, ...]) -> list[ImageSet]:
    bins = decode_all(table, column, spec, split)
    view = View(spec, train=False)
    return [InMemoryImages(bins[rows], labels[rows], view) for rows in row_groups]


def _lazy_sets(table: datasets.Dataset, column: str, labels: Tensor, spec: ImageSpec,
               split: str, row_groups: tuple[Tensor, ...]) -> list[ImageSet]:
    decode(raw_column(table, column)[0][column], spec, split, 0)  # fail early: wrong mode or size
    view = View(spec, train=False)
    return [LazyImages(table, column, rows, labels[rows], spec, split, view) for rows in row_groups]
