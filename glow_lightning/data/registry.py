"""Benchmark names → DataModule classes, and ``build_datamodule``."""

from __future__ import annotations

from typing import Any

from glow_lightning.data.base import ImageDataModule
from glow_lightning.data.benchmarks import (
    CelebAHQDataModule,
    CIFAR10DataModule,
    ImageNet32DataModule,
    ImageNet64DataModule,
    LSUNBedroomDataModule,
    LSUNChurchDataModule,
    LSUNTowerDataModule,
    MNISTDataModule,
)
from glow_lightning.data.digits import DigitsDataModule

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
}


def build_datamodule(name: str, **kwargs: Any) -> ImageDataModule:
    """The DataModule for benchmark ``name`` (see ``DATASETS``), built from plain keyword values.

    >>> build_datamodule("digits").image_shape
    (1, 32, 32)
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)
