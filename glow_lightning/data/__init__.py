"""LightningDataModules over Hugging Face ``datasets`` for the flow benchmarks.

``build_datamodule(name, **kwargs)`` gives one of ``DATASETS``; batches are ``(bins, labels)``
with bins uint8 (B, C, H, W) in [0, 2^n_bits) and labels int64 (B,). Bad data raises
``DataError`` with a one-line message naming the fix.
"""

from glow_lightning.data.base import ImageDataModule
from glow_lightning.data.benchmarks import (
    CelebAHQDataModule,
    CIFAR10DataModule,
    ImageNet32DataModule,
    ImageNet64DataModule,
    LSUNBedroomDataModule,
    LSUNChurchDataModule,
    LSUNDataModule,
    LSUNTowerDataModule,
    MNISTDataModule,
)
from glow_lightning.data.digits import DigitsDataModule
from glow_lightning.data.errors import DataError
from glow_lightning.data.registry import DATASETS, build_datamodule
from glow_lightning.data.samplers import ShardedEvalSampler, ShardedShuffleSampler

__all__ = [
    "DATASETS",
    "CIFAR10DataModule",
    "CelebAHQDataModule",
    "DataError",
    "DigitsDataModule",
    "ImageDataModule",
    "ImageNet32DataModule",
    "ImageNet64DataModule",
    "LSUNBedroomDataModule",
    "LSUNChurchDataModule",
    "LSUNDataModule",
    "LSUNTowerDataModule",
    "MNISTDataModule",
    "ShardedEvalSampler",
    "ShardedShuffleSampler",
    "build_datamodule",
]
