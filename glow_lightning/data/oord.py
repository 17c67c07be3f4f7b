"""Van den Oord et al.'s downsampled ImageNet (Pixel Recurrent Neural Networks, 2016) as
distributed: the data of the Glow (Kingma & Dhariwal 2018, Table 2) and Real NVP (Dinh et al.
2017, Table 1) ImageNet 32x32 / 64x64 numbers.

The official release (image-net.org, "Downsampled ImageNet 32x32 / 64x64": ``train_32x32.tar``,
``valid_32x32.tar``, ``train_64x64.tar``, ``valid_64x64.tar``) holds unlabelled PNGs:
1,281,149 train and 49,999 validation images (the counts of TFDS ``downsampled_imagenet``); the
validation images are the papers' test set. ``data.source`` names a folder that holds either the
unpacked folders ``train_<S>x<S>/`` and ``valid_<S>x<S>/`` or the two ``.tar`` files. Each split
becomes a Hugging Face ``Dataset`` with one Image column, ``image`` (file paths for folders, PNG
bytes for tars), in sorted file order (tar member order for tars), cached by ``datasets`` and
rebuilt when the files' names or sizes change.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets

from glow_lightning.data.identity import files_sha256
from glow_lightning.errors import DataError

TRAIN_SIZE, VALID_SIZE = 1_281_149, 49_999
FEATURES = datasets.Features({"image": datasets.Image()})
PARTS = {"train": "train", "validation": "valid"}  # split name → file name prefix


def oord_hint(side: int) -> str:
    """Where to get the data and how to point ``data.source`` at it."""
    return (f"download train_{side}x{side}.tar and valid_{side}x{side}.tar from image-net.org "
            f"'Downsampled ImageNet {side}x{side}' and point data.source= at the folder holding "
            f"them or their unpacked train_{side}x{side}/ and valid_{side}x{side}/ folders")


def oord_parts(source: str, side: int) -> dict[str, Path]:
    """{"train": path, "validation": path}: each a folder of PNGs or a ``.tar`` of them."""
    root = Path(source).expanduser()
    parts = {}
    for split, prefix in PARTS.items():
        name = f"{prefix}_{side}x{side}"
        found = [p for p in (root / name, root / f"{name}.tar") if p.exists()]
        if not found:
            raise DataError(f"data.source '{source}' has neither {name}/ nor {name}.tar "
                            f"(data.version=oord); {oord_hint(side)}")
        parts[split] = found[0]
    return parts


def is_oord(source: str | None, side: int) -> bool:
    """Whether ``source`` is a local folder laid out as the downsampled ImageNet release."""
    if source is None:
        return False
    root = Path(source).expanduser()
    return root.is_dir() and all(
        (root / f"{p}_{side}x{side}").is_dir() or (root / f"{p}_{side}x{side}.tar").is_file()
        for p in PARTS.values())


def part_files(part: Path) -> list[Path]:
    """The files that identify one part: its PNGs (sorted), or the tar itself."""
    return sorted(part.rglob("*.png")) if part.is_dir() else [part]


def _rows(path: str, stamp: str) -> Iterator[dict[str, Any]]:
    """Image rows of one part; ``stamp`` (the files' hash) only keys the ``datasets`` cache."""
    part = Path(path)
    if part.is_dir():
        for file in sorted(part.rglob("*.png")):
            yield {"image": {"path": str(file), "bytes": None}}
        return
    with tarfile.open(part, "r|*") as tar:  # one pass, in member order
        for member in tar:
            if member.isfile() and member.name.lower().endswith(".png"):
                data = tar.extractfile(member)
                assert data is not None
                yield {"image": {"path": member.name, "bytes": data.read()}}


def load_oord(source: str, side: int, cache_dir: str | None = None
              ) -> dict[str, datasets.Dataset]:
    """{"train", "validation"} Datasets of the release under ``source``; see the module doc."""
    out = {}
    for split, part in oord_parts(source, side).items():
        stamp = files_sha256(part, part_files(part))
        try:
            out[split] = datasets.Dataset.from_generator(
                _rows, features=FEATURES, cache_dir=cache_dir,
                gen_kwargs={"path": str(part), "stamp": stamp}, split=datasets.Split.TRAIN)
        except Exception as exc:
            reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
            raise DataError(f"could not read {part} (data.version=oord): {reason}; "
                            f"{oord_hint(side)}") from exc
        if len(out[split]) == 0:
            raise DataError(f"{part} holds no .png images (data.version=oord); "
                            f"{oord_hint(side)}")
    return out
