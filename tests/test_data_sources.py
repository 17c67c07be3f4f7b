"""Source detection and loading: Hub ids, save_to_disk folders, parquet, image folders, splits."""

from __future__ import annotations

import pytest

from glow_lightning.data import CIFAR10DataModule, MNISTDataModule
from glow_lightning.data.sources import load_source, pick_splits, source_kind, split_off_test
from tests.data_helpers import (
    pixels,
    save_disk,
    save_image_folder,
    save_parquet_folder,
    table,
)


def test_source_kind_from_the_path(tmp_path):
    images = table(pixels(4, 28), [0, 1, 2, 3])
    disk = save_disk(tmp_path / "disk", images, images)
    parquet = save_parquet_folder(tmp_path / "pq", images, images)
    save_image_folder(tmp_path / "imgs", pixels(2, 28))
    assert source_kind(disk) == "disk"
    assert source_kind(parquet) == "parquet"
    assert source_kind(f"{parquet}/train-00000-of-00001.parquet") == "parquet"
    assert source_kind(f"{parquet}/*.parquet") == "parquet"
    assert source_kind(str(tmp_path / "imgs")) == "imagefolder"
    assert source_kind("ylecun/mnist") == source_kind("mnist") == "hub"


def test_every_local_format_loads_train_and_test(tmp_path):
    images = table(pixels(10, 28), list(range(10)))
    cache = str(tmp_path / "cache")
    save_image_folder(tmp_path / "imgs" / "train", pixels(10, 28), [0] * 5 + [1] * 5)
    save_image_folder(tmp_path / "imgs" / "test", pixels(4, 28), [0, 1, 0, 1])
    sources = [save_disk(tmp_path / "disk", images, images.select(range(3))),
               save_parquet_folder(tmp_path / "pq", images, images.select(range(3))),
               str(tmp_path / "imgs")]
    for source in sources:
        splits = load_source(source, cache)
        assert set(splits) == {"train", "test"}, source
        train, test = pick_splits(splits, ("test",), seed=0, source=source)
        assert len(train) == 10 and len(test) in (3, 4)
        assert "image" in train.column_names and "label" in train.column_names


def test_parquet_glob_and_validation_as_test(tmp_path):
    images = table(pixels(20, 28), [0] * 20)
    images.to_parquet(str(tmp_path / "a.parquet"))
    images.to_parquet(str(tmp_path / "b.parquet"))
    splits = load_source(str(tmp_path / "*.parquet"), str(tmp_path / "cache"))
    assert list(splits) == ["train"] and len(splits["train"]) == 40
    train, test = pick_splits({"train": images, "validation": images.select([0])}, ("test",
                              "validation"), seed=0, source="x")
    assert len(test) == 1


def test_single_split_gets_a_seeded_90_10_split(tmp_path):
    images = table(pixels(50, 28), list(range(50)), num_classes=50)
    def split(seed):
        return [list(t["label"]) for t in split_off_test(images, seed)]

    (train, test), again = split(0), split(0)
    assert [train, test] == again and len(test) == 5 and sorted(train + test) == list(range(50))
    assert split(1)[1] != test
    source = save_disk(tmp_path / "one", images)
    dm = MNISTDataModule(source, seed=3, batch_size=5, val_size=0)
    assert (len(dm.splits.train), len(dm.splits.test)) == (45, 5)
    with pytest.raises(Exception, match="expected 'train'"):
        pick_splits({"a": images, "b": images}, ("test",), 0, "x")


def test_named_image_column_is_used(tmp_path):
    images = table(pixels(6, 32, "RGB"), [0] * 6, image_column="img")
    source = save_disk(tmp_path / "cifar", images, images)
    dm = CIFAR10DataModule(source, image_column="img", batch_size=2)
    assert dm.example_images(2)[0].shape == (2, 3, 32, 32)
