"""Which columns hold the images and the labels, and how many classes there are."""

from __future__ import annotations

import datasets
import numpy as np
import torch
from torch import Tensor

from glow_lightning.data.errors import DataError


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
