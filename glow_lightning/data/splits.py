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


@dataclass(frozen=True)
class CheckedTable:
    """One split of the source with its resolved image column and int64 labels (N,)."""

    table: datasets.Dataset
    split: str
    image_column: str
    labels: Tensor
    num_classes: int


def check_table(table: datasets.Dataset, split: str, columns: Columns) -> CheckedTable:
    """Insist on rows and an image column; read the labels (-1 without a label column)."""
    if len(table) == 0:
        raise DataError(f"the {split} split is empty; point data.source= at data with images "
                        "in it, or raise data.max_train / data.max_test")
    image = image_column(table, columns.image, columns.default_image, split)
    label = label_column(table, columns.label, columns.default_label, split)
    labels = read_labels(table, label)
    return CheckedTable(table, split, image, labels, count_classes(table, label, labels))


def build_splits(train: datasets.Dataset, test: datasets.Dataset, spec: ImageSpec,
                 columns: Columns, val_size: int, seed: int, in_memory: bool | None) -> Splits:
    """Check the tables and build image sets; see the module docstring."""
    checked_train, checked_test = check_table(train, "train", columns), check_table(
        test, "test", columns)
    train_rows, val_rows = holdout(len(train), val_size, seed)
    if in_memory is None:
        in_memory = fits_in_memory(len(train) + len(test), spec)
    make = _in_memory_sets if in_memory else _lazy_sets
    train_set, val_set = make(checked_train, spec, (train_rows, val_rows))
    (test_set,) = make(checked_test, spec, (torch.arange(len(test)),))
    num_classes = max(checked_train.num_classes, checked_test.num_classes)
    return Splits(train_set.with_view(View(spec, train=True)), val_set if val_size else None,
                  test_set, num_classes, val_rows)


def _in_memory_sets(checked: CheckedTable, spec: ImageSpec, row_groups: tuple[Tensor, ...]
                    ) -> list[ImageSet]:
    bins = decode_all(checked.table, checked.image_column, spec, checked.split)
    view = View(spec, train=False)
    return [InMemoryImages(bins[rows], checked.labels[rows], view) for rows in row_groups]


def _lazy_sets(checked: CheckedTable, spec: ImageSpec, row_groups: tuple[Tensor, ...]
               ) -> list[ImageSet]:
    table, column, split = checked.table, checked.image_column, checked.split
    decode(raw_column(table, column)[0][column], spec, split, 0)  # fail early: wrong mode or size
    view = View(spec, train=False)
    return [LazyImages(table, column, rows, checked.labels[rows], spec, split, view)
            for rows in row_groups]
