"""Tiny local image datasets in every source format, built inside each test's tmp_path.

Shared by the tests/test_data_*.py files; holds no tests itself.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
from PIL import Image


def pixels(n: int, size: int | tuple[int, int], mode: str = "L", seed: int = 0) -> np.ndarray:
    """Random uint8 pixels (n, H, W) for "L", (n, H, W, C) otherwise; size is side or (W, H)."""
    width, height = (size, size) if isinstance(size, int) else size
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, height, width, *channels), dtype=np.uint8)


def table(array: np.ndarray, labels: list[int] | None = None, num_classes: int = 10,
          image_column: str = "image") -> datasets.Dataset:
    """A Dataset with an Image column (and a ClassLabel "label" column when labels are given)."""
    columns: dict = {image_column: [Image.fromarray(a) for a in array]}
    features = {image_column: datasets.Image()}
    if labels is not None:
        columns["label"] = labels
        features["label"] = datasets.ClassLabel(num_classes=num_classes)
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def save_disk(path: Path, train: datasets.Dataset, test: datasets.Dataset | None = None) -> str:
    """A save_to_disk folder: a DatasetDict with train/test, or one Dataset."""
    target = train if test is None else datasets.DatasetDict(train=train, test=test)
    target.save_to_disk(str(path))
    return str(path)


def save_parquet_folder(path: Path, train: datasets.Dataset, test: datasets.Dataset) -> str:
    """A folder with train-*.parquet and test-*.parquet."""
    path.mkdir(parents=True)
    train.to_parquet(str(path / "train-00000-of-00001.parquet"))
    test.to_parquet(str(path / "test-00000-of-00001.parquet"))
    return str(path)


def save_image_folder(path: Path, array: np.ndarray, labels: list[int] | None = None,
                      suffix: str = ".png") -> list[Path]:
    """Images under path/<label>/ (or directly under path without labels); returns the files."""
    files = []
    for i, image in enumerate(array):
        folder = path if labels is None else path / f"class{labels[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        files.append(folder / f"{i:04d}{suffix}")
        Image.fromarray(image).save(files[-1])
    return files


def drain(loader) -> tuple:
    """All batches of a loader concatenated: (bins, labels)."""
    import torch

    batches = list(loader)
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def hub_parquet(path: Path, train: int, test: int, shards: int = 2, side: int = 32,
                seed: int = 0) -> str:
    """A folder laid out like the ``uoft-cs/cifar10`` Hub repository: ``plain_text/`` with
    ``train-0000i-of-0000n.parquet`` shards and one test shard, columns ``img`` (PNG bytes) and
    ``label`` (ClassLabel, 10 classes)."""
    features = datasets.Features({"img": datasets.Image(),
                                  "label": datasets.ClassLabel(num_classes=10)})
    folder = path / "plain_text"
    folder.mkdir(parents=True)
    parts = [("train", i, shards, n) for i, n in enumerate(_split(train, shards))]
    parts.append(("test", 0, 1, test))
    start = 0
    for split, index, count, n in parts:
        images = pixels(n, side, "RGB", seed=seed + start)
        labels = [(start + i) % 10 for i in range(n)]
        rows = {"img": [Image.fromarray(a) for a in images], "label": labels}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / f"{split}-{index:05d}-of-{count:05d}.parquet"))
        start += n
    return str(path)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]
