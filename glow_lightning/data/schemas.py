"""The recorded schema of every default Hugging Face Hub dataset, checked when it is loaded.

Columns, split names, sizes and config names as their dataset cards record them. A Hub copy that
does not match (a renamed column, a missing split) stops with one line; a different split size is
a different revision of the data and is reported as a warning. Where a Hub copy lacks the paper's
split, the note says so: the LSUN copies have no LSUN validation set (their ``test`` split is a
random part of LSUN's training images), so their test bits/dim are not the papers' numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from glow_lightning.errors import DataError


@dataclass(frozen=True)
class HubSchema:
    """Image and label columns, split sizes and class count of one Hub dataset."""

    image: str
    label: str | None
    splits: dict[str, int]
    classes: int = 0
    note: str = ""
    extra_columns: tuple[str, ...] = field(default=())
    config: str | None = None  # the Hub dataset's config name, when it has several


HUB_SCHEMAS: dict[str, HubSchema] = {
    "ylecun/mnist": HubSchema("image", "label", {"train": 60_000, "test": 10_000}, 10),
    "uoft-cs/cifar10": HubSchema("img", "label", {"train": 50_000, "test": 10_000}, 10),
    "benjamin-paine/imagenet-1k-32x32": HubSchema(
        "image", "label", {"train": 1_281_167, "validation": 50_000, "test": 100_000}, 1000,
        "ILSVRC-2012 centre-cropped and Lanczos-resized, not van den Oord's downsampled "
        "ImageNet of the papers (data.version=oord); its validation split serves as the test"),
    "benjamin-paine/imagenet-1k-64x64": HubSchema(
        "image", "label", {"train": 1_281_167, "validation": 50_000, "test": 100_000}, 1000,
        "ILSVRC-2012 centre-cropped and Lanczos-resized, not van den Oord's downsampled "
        "ImageNet of the papers (data.version=oord); its validation split serves as the test"),
    "pcuenq/lsun-bedrooms": HubSchema(
        "image", None, {"train": 287_968, "test": 15_157}, 0,
        "a 10% sample of LSUN bedroom (303,125 of its 3,033,042 training images); its test "
        "split is 5% of that sample, not LSUN's validation set"),
    "tglcourse/lsun_church_train": HubSchema(
        "image", None, {"train": 119_915, "test": 6_312}, 0,
        "LSUN church_outdoor train split, re-split by the uploader; not LSUN's validation set "
        "(its 16-class label column is not a class and is ignored)", ("label",)),
    "korexyz/celeba-hq-256x256": HubSchema(
        "image", None, {"train": 28_000, "validation": 2_000}, 0,
        "CelebA-HQ at 256x256; the validation split serves as the test set"),
    "ufldl-stanford/svhn": HubSchema(
        "image", "label", {"train": 73_257, "test": 26_032, "extra": 531_131}, 10,
        "SVHN cropped digits (Netzer et al. 2011), 32x32 RGB; an out-of-distribution set for "
        "models of CIFAR-10", config="cropped_digits"),
}


def hub_config(source: str) -> str | None:
    """The config name to load ``source`` with (None: the dataset's only or default one)."""
    schema = HUB_SCHEMAS.get(source)
    return schema.config if schema is not None else None


def _columns(split: Any) -> list[str]:
    names = getattr(split, "column_names", None)
    if names is None and getattr(split, "features", None) is not None:
        names = list(split.features)
    return list(names or [])


def check_hub_schema(source: str, splits: Mapping[str, Any]) -> None:
    """Check a loaded Hub dataset (map-style or streamed splits) against its recorded schema;
    unknown ids pass unchecked."""
    schema = HUB_SCHEMAS.get(source)
    if schema is None:
        return
    missing = sorted(set(schema.splits) - set(splits))
    if missing:
        raise DataError(f"Hub dataset '{source}' has splits {sorted(splits)}, but its recorded "
                        f"schema has {sorted(schema.splits)} (missing: {', '.join(missing)}); "
                        "pin the dataset revision or point data.source= at a local copy")
    for name, split in splits.items():
        columns = _columns(split)
        needed = [c for c in (schema.image, schema.label) if c]
        absent = [c for c in needed if columns and c not in columns]
        if absent:
            raise DataError(f"Hub dataset '{source}' split '{name}' has columns {columns}, not "
                            f"the recorded {needed}; set data.image_column= / "
                            "data.label_column= or point data.source= at a matching copy")
        expected, size = schema.splits.get(name), getattr(split, "num_rows", None)
        if expected is not None and size is not None and size != expected:
            warnings.warn(f"Hub dataset '{source}' split '{name}' has {size} rows; its recorded "
                          f"schema has {expected} (another revision of the data)", stacklevel=2)
