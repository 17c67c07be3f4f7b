"""One LightningDataModule per benchmark of the Glow paper (Kingma & Dhariwal 2018, Sec. 5).

Each names its Hub default and its preprocessing (``ImageSpec``); see ``images`` for the stages.
``image_size`` is the side raw images are resized to (MNIST then pads by 2 px each side; LSUN
resizes the shorter side to 1.5 × image_size and crops image_size).
"""

from __future__ import annotations

from typing import ClassVar

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
