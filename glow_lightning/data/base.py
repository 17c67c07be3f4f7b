"""``ImageDataModule``: the shared LightningDataModule behind every benchmark.

A subclass names its defaults (Hub id, columns, test split) and its ``ImageSpec`` (geometry,
augmentation); the base loads the source, checks it, builds train / val / test sets and owns
distribution through its samplers.

Every loader's batch is ``(bins, labels, index)``: bins uint8 (B, C, H, W) in [0, 2^n_bits),
labels int64 (B,) (-1 where the data has no labels), index int64 (B,), each image's position in
its split (-1 when streamed). Dequantisation is the model's.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import datasets
import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from glow_lightning.data.image_sets import ImageSet, InMemoryImages
from glow_lightning.data.images import ImageSpec, View
from glow_lightning.data.provenance import Provenance
from glow_lightning.data.samplers import ResumeTracker, ShardedEvalSampler, ShardedShuffleSampler
from glow_lightning.data.sources import (
    LOCAL_HINT,
    cap_rows,
    load_source,
    pick_splits,
    source_kind,
)
from glow_lightning.data.splits import Columns, Splits, build_splits, default_val_count
from glow_lightning.data.streaming import StreamPosition, Streams, open_streams
from glow_lightning.data.versions import find_version, require_source
from glow_lightning.errors import DataError


class ImageDataModule(Provenance, L.LightningDataModule):
    """Images from a Hub id, a ``save_to_disk`` folder, parquet file(s) or an image folder.

    ``val_size`` images are held out of the train split for validation, chosen by ``seed``;
    ``None`` holds out the dataset's ``default_val_size`` (a proportional share of a train split
    smaller than ``reference_train_size``: :func:`~glow_lightning.data.splits.default_val_count`);
    ``0`` trains on every training image and validates on the test split (``val_is_test``).
    Streams hold nothing out (``val_size`` must be None or 0): a held-out part of a stream can
    only be a prefix of its files, which Hub shards often order by class, not a random sample.
    ``version`` names the copy of the data (:mod:`glow_lightning.data.versions`; None: the
    dataset's default); ``identity()`` records what was read.
    ``label_column=None`` uses the dataset's default label column if the source has one.
    ``in_memory=None`` decodes the data once into memory when it fits in 1 GiB.
    ``tile_channels`` repeats 1-channel images to 3 channels (MNIST, digits).
    ``streaming`` reads the source as streams, never materialised
    (:mod:`glow_lightning.data.streaming`); ``num_workers=None`` picks worker processes where
    images are decoded per item.
    """

    name = "images"  # the DATASETS key (LightningDataModule.name)
    title: ClassVar[str] = "images"  # for messages
    default_source: ClassVar[str | None] = None
    default_image_column: ClassVar[str] = "image"
    default_label_column: ClassVar[str | None] = "label"
    test_split_names: ClassVar[tuple[str, ...]] = ("test", "validation")
    test_split = "test"  # the source's split that serves as the test split, once loaded
    default_n_bits: ClassVar[int] = 8
    default_val_size: ClassVar[int] = 5000  # held out of a train split of reference_train_size
    reference_train_size: ClassVar[int] = 50_000

    def __init__(self, source: str | None = None, *, image_column: str | None = None,
                 label_column: str | None = None, n_bits: int | None = None, batch_size: int = 64,
                 eval_batch_size: int | None = None, num_workers: int | None = None,
                 val_size: int | None = None, seed: int = 0, augment: bool = False,
                 image_size: int | None = None, cache_dir: str | None = None,
                 max_train: int | None = None,
                 max_test: int | None = None, convert_mode: bool = False,
                 tile_channels: bool = False, in_memory: bool | None = None,
                 streaming: bool = False, version: str | None = None) -> None:
        super().__init__()
        self.source, self.cache_dir = source, cache_dir
        self.columns = Columns(image_column, label_column, self.default_image_column,
                               self.default_label_column)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.val_size, self.seed = num_workers, val_size, seed
        self.augment, self.image_size, self.convert_mode = augment, image_size, convert_mode
        self.max_train, self.max_test, self.in_memory = max_train, max_test, in_memory
        self.tile_channels, self.streaming = tile_channels, streaming
        self.spec = self.build_spec(self.default_n_bits if n_bits is None else n_bits)
        if tile_channels and self.spec.mode != "L":
            raise ValueError(f"tile_channels applies to 1-channel data (mnist, digits), "
                             f"not {self.name}")
        if val_size is not None and val_size < 0:
            raise DataError(f"data.val_size={val_size} must be >= 0 (or null: the dataset's "
                            "default)")
        self.data_version = (self.default_version() if version is None
                             else find_version(self.name, self.versions, version))
        self._splits: Splits | None = None
        self._cache_files: list[dict[str, Any]] = []  # of the loaded train split (Provenance)
        self._identity: dict[str, Any] | None = None
        self._streams: Streams | None = None
        self._train_sampler: ShardedShuffleSampler | StreamPosition | None = None
        self._resume = ResumeTracker()

    def build_spec(self, n_bits: int) -> ImageSpec:
        """The dataset's preprocessing; subclasses read ``image_size``, ``augment`` etc."""
        return ImageSpec(self.title, "RGB", resize=self.image_size, flip=self.augment,
                         convert_mode=self.convert_mode, n_bits=n_bits)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) as the flow sees it; known from construction."""
        return self.spec.image_shape

    @property
    def n_bits(self) -> int:
        return self.spec.n_bits

    @property
    def num_classes(self) -> int:
        """Number of label classes (0 when unlabelled); loads the data if not set up yet."""
        return self.streams.num_classes if self.streaming else self.splits.num_classes

    @property
    def streams(self) -> Streams:
        """The train and test streams (``streaming=True``), opened on first use."""
        if self._streams is None:
            self.setup("fit")
        assert self._streams is not None
        return self._streams

    @property
    def splits(self) -> Splits:
        """The train / val / test image sets, set up on first use."""
        if self._splits is None:
            self.setup("fit")
        assert self._splits is not None
        return self._splits

    @property
    def val_is_test(self) -> bool:
        """True when the validation loader serves the test split (``val_size=0`` or streams):
        validation bits/dim are then test bits/dim, not a held-out estimate."""
        return self.streaming or self.splits.val is None

    def val_count(self, n_train: int) -> int:
        """Images held out of a train split of ``n_train``: ``val_size`` or the default."""
        if self.val_size is not None:
            return self.val_size
        return default_val_count(n_train, self.default_val_size, self.reference_train_size)

    # -- loading -----------------------------------------------------------------------------
    def _source(self) -> str:
        require_source(self.name, self.data_version, self.source, self.default_source is not None)
        source = self.source or self.default_source
        if source is None:
            raise DataError(f"{self.name} has no default Hugging Face Hub dataset; "
                            f"point data.source= at {LOCAL_HINT}")
        return source

    def source_tables(self) -> tuple[datasets.Dataset, datasets.Dataset]:
        """(train, test) Hugging Face datasets of the source."""
        source = self._source()
        splits = load_source(source, self.cache_dir)
        named = [name for name in self.test_split_names if name in splits]
        self.test_split = named[0] if named and "train" in splits else "test (10% of the source)"
        return pick_splits(splits, self.test_split_names, self.seed, source)

    def open_streams(self) -> Streams:
        """The source's splits as streams (nothing is downloaded or converted)."""
        source = self._source()
        if self.val_size:  # None and 0: validation uses the test split
            raise DataError("data.val_size holds images out of a map-style train split; with "
                            "data.streaming=true validation uses the test split: set "
                            "data.val_size=0")
        splits = load_source(source, self.cache_dir, streaming=True)
        return open_streams(source, source_kind(source), splits, self.test_split_names,
                            self.columns, self.spec, self.seed, self.max_train, self.max_test)

    def load_tables(self) -> tuple[datasets.Dataset, datasets.Dataset]:
        """``source_tables``, the test split capped by ``max_test`` (``max_train`` caps the
        train rows left after the validation hold-out: ``build_splits``)."""
        train, test = self.source_tables()
        self._cache_files = list(train.cache_files)
        return train, cap_rows(test, self.max_test)

    def prepare_data(self) -> None:
        """Download (or convert) the source once; safe to call again. Streams download
        nothing: opening them checks the source."""
        if self.streaming:
            self.open_streams()
        else:
            self.load_tables()

    def setup(self, stage: str | None = None) -> None:
        """Load, check and split the data (once; later calls do nothing)."""
        if self.streaming:
            self._streams = self._streams or self.open_streams()
        elif self._splits is None:
            train, test = self.load_tables()
            self._splits = build_splits(train, test, self.spec, self.columns,
                                        self.val_count(len(train)), self.seed, self.in_memory,
                                        self.max_train)

    # -- loaders -----------------------------------------------------------------------------
    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    @property
    def workers(self) -> int:
        """``num_workers``, or by default worker processes where images are decoded per item
        (streams and datasets too big for memory): up to 4 per process, within the cores."""
        if self.num_workers is not None:
            return self.num_workers
        decoded_once = not self.streaming and isinstance(self.splits.train, InMemoryImages)
        if decoded_once:  # a batch is a tensor slice: workers would only add copies
            return 0
        devices = self.trainer.num_devices if self.trainer is not None else 1
        return max(1, min(4, (os.cpu_count() or 1) // max(1, devices) - 1))

    def train_dataloader(self) -> Any:
        """Shuffled shard of train per rank; full batches only (stable shapes for compile)."""
        if self.streaming:
            return self._stream_train_loader()
        train = self.splits.train
        rank, world = self._rank_and_world()
        if len(train) // world < self.batch_size:
            raise DataError(f"the train split has {len(train)} images, fewer than batch_size="
                            f"{self.batch_size} per rank on {world} rank(s); lower data.batch_size")
        sampler = ShardedShuffleSampler(len(train), self.seed, rank, world)
        if self._train_sampler is not None:
            sampler.set_epoch(self._train_sampler.epoch)
        self._train_sampler = sampler
        self._resume.attach(sampler, self.trainer, self.batch_size)
        return self._loader(train, self.batch_size, sampler, drop_last=True)

    def _stream_train_loader(self) -> Any:
        """This rank's batches of the epoch's stream, skipping what a checkpoint trained on."""
        rank, world = self._rank_and_world()
        streams = self.streams
        position = StreamPosition(streams.train_size // world // self.batch_size
                                  * self.batch_size)
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        position.set_epoch(epoch)
        self._resume.attach(position, self.trainer, self.batch_size)
        self._train_sampler = position
        skip, position.skip = position.skip if position.epoch == epoch else 0, 0
        return streams.train_loader(rank, world, epoch, self.batch_size, self.workers, skip,
                                    torch.cuda.is_available())

    def val_dataloader(self) -> DataLoader:
        """Held-out train images, or the test split when ``val_size`` is 0."""
        if self.streaming:
            return self._eval_loader(None)
        val = self.splits.val
        return self._eval_loader(self.splits.test if val is None else val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(None if self.streaming else self.splits.test)

    def _eval_loader(self, dataset: ImageSet | None) -> DataLoader:
        rank, world = self._rank_and_world()
        if dataset is None:
            return self.streams.eval_loader(rank, world, self.eval_batch_size, self.workers,
                                            torch.cuda.is_available())
        sampler = ShardedEvalSampler(len(dataset), rank, world)
        return self._loader(dataset, self.eval_batch_size, sampler, drop_last=False)

    def _loader(self, dataset: ImageSet, batch_size: int, sampler: Any, drop_last: bool
                ) -> DataLoader:
        workers = self.workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=workers, persistent_workers=workers > 0,
                          pin_memory=torch.cuda.is_available())

    def example_images(self, n: int, split: str = "test") -> tuple[Tensor, Tensor]:
        """The first ``n`` images of ``split`` ("train", "val" or "test"), unaugmented.

        Returns bins uint8 (n', C, H, W) and labels int64 (n',) with n' = min(n, split size).
        Streams offer their first test images for every split.
        """
        if self.streaming:
            return self.streams.example_images(n)
        sets = {"train": self.splits.train, "val": self.splits.val, "test": self.splits.test}
        if split not in sets:
            raise ValueError(f"split must be one of {sorted(sets)}, got {split!r}")
        dataset = sets[split]
        if dataset is None:  # no held-out val split: validation uses test
            dataset = self.splits.test
        return dataset.with_view(View(self.spec, train=False)).first(n)

    # -- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"train_sampler": {"epoch", "consumed"}}: where training is in the current epoch."""
        return {"train_sampler": self._resume.position(self._train_sampler, self.trainer,
                                                       self.batch_size)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Make the next train epoch skip the samples the checkpoint had consumed, once."""
        if "train_sampler" in state_dict:
            self._resume.load(state_dict["train_sampler"], self._train_sampler)
