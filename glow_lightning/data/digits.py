"""The embedded default: 5,000 real MNIST digits (``embedded.digits_arrays``), fully offline.

On first use the arrays are converted once into a Hugging Face ``DatasetDict`` (Image +
ClassLabel features, fixed 4,500 / 500 train/test split) saved with ``save_to_disk`` under
``<cache>/digits``, where ``<cache>`` is ``cache_dir``, else ``$GLOW_LIGHTNING_CACHE``, else
``~/.cache/glow_lightning``. Later runs load that folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import datasets
from PIL import Image
from torch import Tensor

from glow_lightning.data.benchmarks import MNISTDataModule
from glow_lightning.data.embedded import digits_arrays

CACHE_ENV = "GLOW_LIGHTNING_CACHE"
FEATURES = datasets.Features(
    {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
)


def digits_cache_dir(cache_dir: str | None = None) -> Path:
    """``<cache_dir or $GLOW_LIGHTNING_CACHE or ~/.cache/glow_lightning>/digits``."""
    root = cache_dir or os.environ.get(CACHE_ENV) or "~/.cache/glow_lightning"
    return Path(root).expanduser() / "digits"


def _to_dataset(images: Tensor, labels: Tensor) -> datasets.Dataset:
    pictures = [Image.fromarray(image[0].numpy(), mode="L") for image in images]  # (28, 28)
    return datasets.Dataset.from_dict({"image": pictures, "label": labels.tolist()},
                                      features=FEATURES)


def build_digits_cache(cache_dir: str | None = None) -> Path:
    """Convert the embedded digits to a ``save_to_disk`` folder once; return its path."""
    target = digits_cache_dir(cache_dir)
    if (target / "dataset_dict.json").exists():
        return target
    train_x, train_y, test_x, test_y = digits_arrays()
    splits = datasets.DatasetDict(train=_to_dataset(train_x, train_y),
                                  test=_to_dataset(test_x, test_y))
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="digits-", dir=target.parent)
    splits.save_to_disk(scratch)
    try:
        os.replace(scratch, target)  # atomic: concurrent builders never see half a folder
    except OSError:  # another process finished first
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class DigitsDataModule(MNISTDataModule):
    """The embedded digits (default) or any MNIST-like ``source``, preprocessed like MNIST."""

    name, title = "digits", "digits"
    default_source = None

    def source_tables(self) -> tuple[datasets.Dataset, datasets.Dataset]:
        """The cached embedded split (built on first use), or ``source`` when one is given."""
        if self.source is not None:
            return super().source_tables()
        splits = datasets.load_from_disk(str(build_digits_cache(self.cache_dir)))
        return splits["train"], splits["test"]
