"""``data.streaming=true``: datasets too big to download (ImageNet 64, LSUN) read as streams.

Each split is a Hugging Face ``IterableDataset`` (a Hub id, parquet files or an image folder,
never materialised). Training: the stream is shuffled with a fixed seed (shards, then a buffer),
reshuffled every epoch, split by rank with ``datasets.distributed.split_dataset_by_node`` and,
inside the loader, by worker (``datasets`` gives each worker its own shards); images are decoded
in the workers. Every rank takes the same number of batches an epoch (DDP needs matched steps),
``split size // world // batch``, so the split's size must be known: from the dataset card, the
recorded Hub schema, the parquet files' metadata, or ``data.max_train``. Evaluation splits the
test stream by rank without padding, so every test image is counted exactly once.

Resuming mid-epoch replays the epoch's (deterministic) stream and skips the batches the
checkpoint had already trained on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets
import torch
from datasets.distributed import split_dataset_by_node
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from glow_lightning.data.images import ImageSpec, View, decode
from glow_lightning.data.samplers import augmentation_seed
from glow_lightning.errors import DataError

SHUFFLE_BUFFER = 10_000  # images held for the stream's shuffle, per worker
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _data_files(source: str, kind: str, split: str) -> list[str]:
    """The local files of ``split`` as ``datasets`` resolves them (empty if unknown)."""
    import os

    path = os.path.expanduser(source)
    try:
        if kind == "parquet" and not os.path.isdir(path):
            builder = datasets.load_dataset_builder("parquet", data_files=path)
        else:
            builder = datasets.load_dataset_builder(kind, data_dir=path)
        files = (builder.config.data_files or {}).get(split, [])
    except Exception:  # unknown layout: the caller falls back to other sources of the size
        return []
    return [str(f) for f in files]


def count_rows(source: str, kind: str, split: str) -> int | None:
    """Rows of a local split: parquet metadata, or image files of an image folder."""
    files = _data_files(source, kind, split)
    if not files:
        return None
    if kind == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.read_metadata(f).num_rows for f in files)
    return sum(f.lower().endswith(IMAGE_SUFFIXES) for f in files)


class StreamedImages(IterableDataset):
    """``(bins, label, -1)`` items of one stream: decoded and checked in the loader's workers,
    then viewed (random crops/flips for training, centre crops for evaluation).

    A training stream's random views draw from a generator of its own, seeded from (run seed,
    epoch, rank, worker) when the stream starts (``augment``): a resumed epoch, which runs the
    stream again and drops the batches already trained on, draws the very same views."""

    def __init__(self, stream: Any, image: str, label: str | None, spec: ImageSpec, split: str,
                 view: View, augment: tuple[int, int, int] | None = None) -> None:
        self.stream, self.image, self.label = stream, image, label
        self.spec, self.split, self.view, self.augment = spec, split, view, augment

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        generator = None
        if self.augment is not None:
            info = get_worker_info()
            seed = augmentation_seed(*self.augment, worker=info.id if info else 0)
            generator = torch.Generator().manual_seed(seed)
        for i, row in enumerate(self.stream):
            bins = decode(row[self.image], self.spec, self.split, i)
            label = int(row[self.label]) if self.label is not None else -1
            yield self.view(bins, generator), torch.tensor(label), torch.tensor(-1)


class Batches:
    """The first ``count`` batches of ``loader`` after skipping ``skip`` (a resumed epoch);
    ``len`` is ``count``, the same on every rank."""

    def __init__(self, loader: DataLoader, count: int, skip: int = 0) -> None:
        self.loader, self.count, self.skip = loader, count, min(skip, count)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.loader), self.skip, self.count)


class StreamPosition:
    """Where training is in the current epoch's stream, with the interface of the map-style
    sampler that :class:`~glow_lightning.data.samplers.ResumeTracker` reads and restores."""

    def __init__(self, num_samples: int) -> None:
        self.num_samples, self.epoch, self.consumed, self.skip = num_samples, 0, 0, 0

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = self.consumed = 0
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
        self.skip = self.consumed


@dataclass
class Streams:
    """The train and test streams of one source, their columns and sizes."""

    train: Any
    test: Any
    image: str
    label: str | None
    num_classes: int
    train_size: int
    spec: ImageSpec
    seed: int

    def train_loader(self, rank: int, world: int, epoch: int, batch_size: int, workers: int,
                     skip_samples: int = 0, pin_memory: bool = False) -> Batches:
        """This rank's batches of epoch ``epoch`` (the same count on every rank)."""
        count = self.train_size // world // batch_size
        if count < 1:
            raise DataError(f"the streamed train split has {self.train_size} images, fewer than "
                            f"batch_size={batch_size} per rank on {world} rank(s); lower "
                            "data.batch_size")
        stream = self.train.shuffle(seed=self.seed, buffer_size=SHUFFLE_BUFFER)
        stream.set_epoch(epoch)
        items = StreamedImages(split_dataset_by_node(stream, rank, world), self.image,
                               self.label, self.spec, "train", View(self.spec, train=True),
                               augment=(self.seed, epoch, rank))
        loader = DataLoader(items, batch_size=batch_size, num_workers=workers,
                            pin_memory=pin_memory)
        return Batches(loader, count, skip_samples // batch_size)

    def eval_loader(self, rank: int, world: int, batch_size: int, workers: int,
                    pin_memory: bool = False) -> DataLoader:
        """This rank's share of the test stream: disjoint across ranks, complete, no padding."""
        items = StreamedImages(split_dataset_by_node(self.test, rank, world), self.image,
                               self.label, self.spec, "test", View(self.spec, train=False))
        return DataLoader(items, batch_size=batch_size, num_workers=workers,
                          pin_memory=pin_memory)

    def example_images(self, n: int) -> tuple[Tensor, Tensor]:
        """The first ``n`` test images, unaugmented: bins uint8 (n', C, H, W), labels (n',)."""
        items = StreamedImages(self.test, self.image, self.label, self.spec, "test",
                               View(self.spec, train=False))
        rows = list(itertools.islice(iter(items), n))
        if not rows:
            return torch.empty((0,), dtype=torch.uint8), torch.empty((0,), dtype=torch.int64)
        return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def _size(stream: Any, split: str, source: str, kind: str, cap: int | None) -> int | None:
    """The number of images of a streamed split: the card's count, the recorded Hub schema,
    the local files' metadata; ``cap`` (``data.max_train``/``max_test``) bounds it."""
    from glow_lightning.data.schemas import HUB_SCHEMAS

    info = getattr(getattr(stream, "info", None), "splits", None) or {}
    size = info[split].num_examples if split in info else None
    if size is None and source in HUB_SCHEMAS:
        size = HUB_SCHEMAS[source].splits.get(split)
    if size is None and kind != "hub":
        size = count_rows(source, kind, split)
    if cap is not None:
        size = cap if size is None else min(size, cap)
    return size


def _raw(stream: Any, image: str, label: str | None) -> Any:
    columns = [image, *([label] if label else [])]
    stream = stream.select_columns(columns)
    if isinstance((stream.features or {}).get(image), datasets.Image):
        stream = stream.cast_column(image, datasets.Image(decode=False))
    return stream


def open_streams(source: str, kind: str, splits: dict[str, Any], test_names: tuple[str, ...],
                 columns: Any, spec: ImageSpec, seed: int, max_train: int | None,
                 max_test: int | None) -> Streams:
    """The :class:`Streams` of ``splits`` (streamed ``IterableDataset``s of ``source``)."""
    from glow_lightning.data.splits import image_column, label_column

    test_name = next((name for name in test_names if name in splits), None)
    if "train" not in splits or test_name is None:
        raise DataError(f"data source '{source}' streams the splits {sorted(splits)}; streaming "
                        f"needs 'train' and one of {list(test_names)}; name the files "
                        "train-*/test-* or set data.streaming=false")
    train, test = splits["train"], splits[test_name]
    image = image_column(train, columns.image, columns.default_image, "train")
    label = label_column(train, columns.label, columns.default_label, "train")
    feature = (train.features or {}).get(label) if label else None
    classes = feature.num_classes if isinstance(feature, datasets.ClassLabel) else 0
    size = _size(train, "train", source, kind, max_train)
    if size is None:
        raise DataError(f"the size of the streamed train split of '{source}' is unknown (no "
                        "dataset card count, no parquet metadata); set data.max_train=<images "
                        "per epoch>")
    train = train.take(max_train) if max_train is not None else train
    test = test.take(max_test) if max_test is not None else test
    return Streams(_raw(train, image, label), _raw(test, image, label), image, label, classes,
                   size, spec, seed)
