"""LightningDataModules over Hugging Face ``datasets`` for the flow benchmarks.

``build_datamodule(name, **kwargs)`` gives one of ``DATASETS``; batches are
``(bins, labels, index)`` with bins uint8 (B, C, H, W) in [0, 2^n_bits), labels int64 (B,) and
the images' indices in their split. Bad data raises :class:`~glow_lightning.errors.DataError`
with a one-line message naming the fix. A new dataset is a subclass in ``benchmarks.py`` and a
row in ``DATASETS``. Each data module says which copy of the data it read
(``identity()``, ``data.version``) and whether the papers' numbers were measured on it
(``paper_comparable()``, ``comparability_note()``).
"""

from typing import Any

from glow_lightning.data.base import ImageDataModule
from glow_lightning.data.benchmarks import (
    CelebAHQDataModule,
    CIFAR10DataModule,
    DigitsDataModule,
    ImageNet32DataModule,
    ImageNet64DataModule,
    LSUNBedroomDataModule,
    LSUNChurchDataModule,
    LSUNDataModule,
    LSUNTowerDataModule,
    MNISTDataModule,
)
from glow_lightning.data.ood import (
    DigitsInvertedDataModule,
    DigitsNoiseDataModule,
    SVHNDataModule,
)
from glow_lightning.data.samplers import ShardedEvalSampler, ShardedShuffleSampler
from glow_lightning.errors import DataError

DATASETS: dict[str, type[ImageDataModule]] = {
    "digits": DigitsDataModule,
    "mnist": MNISTDataModule,
    "cifar10": CIFAR10DataModule,
    "imagenet32": ImageNet32DataModule,
    "imagenet64": ImageNet64DataModule,
    "lsun_bedroom": LSUNBedroomDataModule,
    "lsun_tower": LSUNTowerDataModule,
    "lsun_church": LSUNChurchDataModule,
    "celebahq": CelebAHQDataModule,
    "svhn": SVHNDataModule,  # out-of-distribution sets: glow_lightning.data.ood
    "digits_inverted": DigitsInvertedDataModule,
    "digits_noise": DigitsNoiseDataModule,
}


def build_datamodule(name: str, **kwargs: Any) -> ImageDataModule:
    """The DataModule for benchmark ``name`` (see ``DATASETS``), built from plain keyword values.

    >>> build_datamodule("digits").image_shape
    (1, 32, 32)
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)


__all__ = [
    "DATASETS", "CIFAR10DataModule", "CelebAHQDataModule", "DataError", "DigitsDataModule",
    "DigitsInvertedDataModule", "DigitsNoiseDataModule", "SVHNDataModule",
    "ImageDataModule", "ImageNet32DataModule", "ImageNet64DataModule", "LSUNBedroomDataModule",
    "LSUNChurchDataModule", "LSUNDataModule", "LSUNTowerDataModule", "MNISTDataModule",
    "ShardedEvalSampler", "ShardedShuffleSampler", "build_datamodule",
]
