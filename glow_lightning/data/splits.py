"""Turn (train, test) Hugging Face datasets into checked train / val / test image sets: which
columns hold the images and labels, how many classes there are, the held-out validation rows.

Small data (decoded size within ``MEMORY_BUDGET``) is decoded once into a uint8 tensor, which
checks every image eagerly; large data is decoded per item, after checking the first image of
each split. ``val_size`` images are held out of the whole train split, chosen by ``seed``; then
``max_train`` caps the rows left for training, so the validation set does not depend on the cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch import Tensor

from glow_lightning.data.image_sets import (
    ImageSet,
    InMemoryImages,
    LazyImages,
    decode_all,
    raw_column,
)
from glow_lightning.data.images import ImageSpec, View, decode
from glow_lightning.errors import DataError

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
    train_rows: Tensor  # rows of the source train split trained on, sorted (after max_train)


def holdout(n: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """(train_rows, val_rows), sorted int64: ``val_size`` rows of ``range(n)`` drawn by ``seed``."""
    if not 0 <= val_size < n:
        raise DataError(
            f"val_size={val_size} must lie in [0, {n}) for a train split of {n} images; "
            "lower data.val_size"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def default_val_count(n_train: int, default: int, reference: int) -> int:
    """Images a dataset holds out for validation by default from a train split of ``n_train``.

    ``default`` images of the ``reference`` train size the default was chosen for (e.g. 500 of
    the 4,500 embedded digits); a smaller split (a local sample, a test fixture) holds out the
    same fraction, at least 1 image and always leaving 1 to train on (0 for a 1-image split).
    """
    if n_train < 2:
        return 0
    return min(default, n_train - 1, max(1, round(n_train * default / reference)))


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
                 columns: Columns, val_size: int, seed: int, in_memory: bool | None,
                 max_train: int | None = None) -> Splits:
    """Check the tables and build image sets; see the module docstring."""
    checked_train, checked_test = check_table(train, "train", columns), check_table(
        test, "test", columns)
    train_rows, val_rows = holdout(len(train), val_size, seed)
    train_rows = train_rows[:max_train] if max_train is not None else train_rows
    if len(train_rows) == 0:
        raise DataError("data.max_train=0 leaves no training images; raise data.max_train")
    if in_memory is None:
        in_memory = fits_in_memory(len(train_rows) + len(val_rows) + len(test), spec)
    make = _in_memory_sets if in_memory else _lazy_sets
    train_set, val_set = make(checked_train, spec, (train_rows, val_rows))
    (test_set,) = make(checked_test, spec, (torch.arange(len(test)),))
    num_classes = max(checked_train.num_classes, checked_test.num_classes)
    return Splits(train_set.with_view(View(spec, train=True)), val_set if val_size else None,
                  test_set, num_classes, val_rows, train_rows)


def _in_memory_sets(checked: CheckedTable, spec: ImageSpec, row_groups: tuple[Tensor, ...]
                    ) -> list[ImageSet]:
    """Decode the rows of ``row_groups`` once (all rows: in table order) into in-memory sets."""
    used = torch.cat(row_groups)
    table = checked.table
    if len(used) < len(table):  # capped: decode only the rows in use
        table, row_groups = table.select(used.tolist()), _renumber(row_groups)
    bins = decode_all(table, checked.image_column, spec, checked.split)
    view = View(spec, train=False)
    labels = checked.labels if len(used) == len(checked.table) else checked.labels[used]
    return [InMemoryImages(bins[rows], labels[rows], view) for rows in row_groups]


def _renumber(row_groups: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Groups of rows as positions in their concatenation."""
    bounds = np.cumsum([0, *(len(rows) for rows in row_groups)])
    return tuple(torch.arange(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:],
                                                              strict=True))


def _lazy_sets(checked: CheckedTable, spec: ImageSpec, row_groups: tuple[Tensor, ...]
               ) -> list[ImageSet]:
    table, column, split = checked.table, checked.image_column, checked.split
    decode(raw_column(table, column)[0][column], spec, split, 0)  # fail early: wrong mode or size
    view = View(spec, train=False)
    return [LazyImages(table, column, rows, checked.labels[rows], spec, split, view)
            for rows in row_groups]


def _features_of(table: datasets.Dataset, kind: type) -> list[str]:
    return [name for name, feature in table.features.items() if isinstance(feature, kind)]


def image_column(table: datasets.Dataset, requested: str | None, default: str, split: str) -> str:
    """``requested`` if given (it must exist), else ``default``, else the only Image column."""
    columns = table.column_names
    if requested is not None:
        if requested not in columns:
            raise _missing("image", requested, columns, split, "data.image_column=")
        return requested
    if default in columns:
        return default
    candidates = _features_of(table, datasets.Image)
    if len(candidates) == 1:
        return candidates[0]
    raise _missing("image", default, columns, split, "data.image_column=")


def label_column(
    table: datasets.Dataset, requested: str | None, default: str | None, split: str
) -> str | None:
    """``requested`` if given (it must exist); else ``default`` or the only ClassLabel, if any.

    A dataset whose default is None (LSUN, CelebA-HQ) is unlabelled unless a column is requested.
    """
    columns = table.column_names
    if requested is not None:
        if requested not in columns:
            raise _missing("label", requested, columns, split, "data.label_column=",
                           " or leave it unset to train without labels")
        return requested
    if default is None:
        return None
    if default in columns:
        return default
    candidates = _features_of(table, datasets.ClassLabel)
    return candidates[0] if len(candidates) == 1 else None


def _missing(what: str, name: str, columns: list[str], split: str, option: str,
             extra: str = "") -> DataError:
    return DataError(
        f"{what} column '{name}' not found in the {split} split (columns: {', '.join(columns)}); "
        f"set {option} to one of them{extra}"
    )


def read_labels(table: datasets.Dataset, column: str | None) -> Tensor:
    """Labels as int64 (N,); -1 everywhere when there is no label column."""
    if column is None:
        return torch.full((len(table),), -1, dtype=torch.int64)
    values = np.asarray(table.with_format("numpy")[column])
    if not np.issubdtype(values.dtype, np.integer):
        raise DataError(
            f"label column '{column}' holds {values.dtype} values, not integer class ids; "
            "set data.label_column= to an integer or ClassLabel column"
        )
    return torch.from_numpy(values.astype(np.int64))


def count_classes(table: datasets.Dataset, column: str | None, labels: Tensor) -> int:
    """Number of classes: the ClassLabel's names, else max label + 1, 0 without labels."""
    if column is None:
        return 0
    feature = table.features[column]
    if isinstance(feature, datasets.ClassLabel):
        return feature.num_classes
    return int(labels.max()) + 1 if len(labels) else 0
