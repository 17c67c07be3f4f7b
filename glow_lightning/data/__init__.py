"""LightningDataModules over Hugging Face ``datasets`` for the flow benchmarks.

``build_datamodule(name, **kwargs)`` gives one of ``DATASETS`` (the batch format is
:class:`~glow_lightning.data.base.ImageDataModule`'s). Bad data raises
:class:`~glow_lightning.errors.DataError` with a one-line message naming the fix. A new dataset
is a subclass in ``benchmarks.py`` or ``ood.py`` (its ``name`` is its ``data.name``) listed in
``DATASETS``.
Each data module says which copy of the data it read (``identity()``, ``data.version``) and
whether the papers' numbers were measured on it (``paper_comparable()``,
``comparability_note()``).
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

# data.name → the DataModule, keyed by each class's own ``name``
DATASETS: dict[str, type[ImageDataModule]] = {module.name: module for module in (
    DigitsDataModule, MNISTDataModule, CIFAR10DataModule, ImageNet32DataModule,
    ImageNet64DataModule, LSUNBedroomDataModule, LSUNTowerDataModule, LSUNChurchDataModule,
    CelebAHQDataModule,
    SVHNDataModule, DigitsInvertedDataModule, DigitsNoiseDataModule)}  # the last three: data.ood


def build_datamodule(name: str, **kwargs: Any) -> ImageDataModule:
    """The DataModule for benchmark ``name`` (see ``DATASETS``), built from plain keyword values.

    >>> build_datamodule("digits").image_shape
    (1, 32, 32)
    >>> list(DATASETS)[:3]
    ['digits', 'mnist', 'cifar10']
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
