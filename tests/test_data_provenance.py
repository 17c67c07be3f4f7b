"""Which data a run read: held-out validation by default, data versions (van den Oord's ImageNet
against the Hub copy), paper comparability, identity(), and the out-of-distribution sets."""

from __future__ import annotations

import json
import tarfile

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from glow_lightning.config import ConfigError, load_config
from glow_lightning.data import (
    CIFAR10DataModule,
    ImageNet32DataModule,
    LSUNBedroomDataModule,
    LSUNTowerDataModule,
    SVHNDataModule,
    build_datamodule,
)
from glow_lightning.data.benchmarks import digits_arrays
from glow_lightning.data.identity import cached_revision
from glow_lightning.data.schemas import check_hub_schema, hub_config
from glow_lightning.errors import DataError
from tests.data_helpers import hub_parquet, pixels, save_parquet_folder, table


def _oord_folder(root, n_train=20, n_valid=8):
    for part, n, seed in (("train_32x32", n_train, 1), ("valid_32x32", n_valid, 2)):
        (root / part).mkdir(parents=True)
        for i, image in enumerate(pixels(n, 32, "RGB", seed=seed)):
            Image.fromarray(image).save(root / part / f"{i:07d}.png")
    return root


def _tar_parts(folder, target):
    target.mkdir()
    for part in ("train_32x32", "valid_32x32"):
        with tarfile.open(target / f"{part}.tar", "w") as tar:
            for file in sorted((folder / part).iterdir()):
                tar.add(file, arcname=f"{part}/{file.name}")
    return target


def _one_line_error(match, fn, *args):
    with pytest.raises(DataError, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_oord_folders_and_tars_load_with_their_split_sizes(tmp_path):
    folder = _oord_folder(tmp_path / "oord")
    tars = _tar_parts(folder, tmp_path / "tars")
    loaded = []
    for source in (folder, tars):
        dm = ImageNet32DataModule(str(source), version="oord", batch_size=4,
                                  cache_dir=str(tmp_path / "cache"))
        ident = dm.identity()
        assert ident["version"] == "oord" and ident["source"]["kind"] == "oord"
        assert (ident["splits"]["train"], ident["splits"]["val"], ident["splits"]["test"]) == (
            19, 1, 8)  # 20 train PNGs: 1 held out (the default's share, at least one image)
        assert dm.num_classes == 0 and dm.paper_comparable()
        loaded.append(dm.example_images(8)[0])
    assert ident["source"]["format"] == "tar" and ident["source"]["file_count"] == 2
    expected = torch.from_numpy(pixels(8, 32, "RGB", seed=2)).permute(0, 3, 1, 2)
    assert torch.equal(loaded[0], expected) and torch.equal(loaded[1], expected)
    detected = ImageNet32DataModule(str(folder), cache_dir=str(tmp_path / "cache"))
    assert detected.data_version.name == "oord"  # the release's layout, version unset
    assert detected.identity()["source"]["file_count"] == 28


def test_oord_needs_a_local_source_and_versions_are_checked(tmp_path):
    _one_line_error(r"imagenet32 data.version=oord is read from local files: point "
                    r"data.source= at local files \(download train_32x32.tar and "
                    "valid_32x32.tar from image-net.org",
                    ImageNet32DataModule(version="oord").setup)
    (tmp_path / "half" / "train_32x32").mkdir(parents=True)
    _one_line_error("has neither valid_32x32/ nor valid_32x32.tar",
                    ImageNet32DataModule(str(tmp_path / "half"), version="oord").setup)
    _one_line_error("imagenet32 has no data.version='oards'; choose one of: hub, oord",
                    lambda: ImageNet32DataModule(version="oards"))
    assert ImageNet32DataModule(version="ilsvrc_lanczos").data_version.name == "hub"


def test_comparability_of_data_versions():
    hub, oord = ImageNet32DataModule(), ImageNet32DataModule(version="oord")
    assert hub.comparability_note(4.09) == (
        "imagenet32 data.version=hub is ILSVRC centre-crop+Lanczos "
        "(benjamin-paine/imagenet-1k-32x32), not van den Oord's downsampled ImageNet: test "
        "bits/dim are not comparable to paper_bpd 4.09")
    assert not hub.paper_comparable() and oord.paper_comparable()
    assert oord.comparability_note(4.09) is None
    bedroom = LSUNBedroomDataModule()
    assert "about 10% of LSUN bedroom" in bedroom.comparability_note()
    assert LSUNBedroomDataModule(version="lsun").paper_comparable()
    assert CIFAR10DataModule().paper_comparable()
    assert build_datamodule("imagenet64").comparability_note().startswith(
        "imagenet64 data.version=hub is ILSVRC centre-crop+Lanczos")


def test_lsun_tower_error_says_how_to_get_local_data():
    message = _one_line_error("lsun_tower", LSUNTowerDataModule().prepare_data)
    assert "data.source=" in message and "tower_train_lmdb" in message


def test_hub_revision_comes_from_the_datasets_cache_path():
    sha = "0b2714987fa478483af9968de7c934580d0bb9a2"
    files = [{"filename": f"/c/uoft-cs___cifar10/plain_text/0.0.0/{sha}/cifar10-train.arrow"}]
    assert cached_revision(files) == sha and cached_revision([{"filename": "/c/x.arrow"}]) is None


def test_digits_hold_out_500_disjoint_training_digits(digits_cache):
    dm = build_datamodule("digits", cache_dir=digits_cache, batch_size=50)
    splits = dm.splits
    assert (len(splits.train), len(splits.val), len(splits.test)) == (4000, 500, 500)
    train, val = set(splits.train_rows.tolist()), set(splits.val_rows.tolist())
    assert not train & val and train | val == set(range(4500)) and not dm.val_is_test
    source = datasets.load_from_disk(f"{digits_cache}/digits")["train"]
    assert splits.val.labels.tolist() == [source[int(i)]["label"] for i in splits.val_rows]
    other_seed = build_datamodule("digits", cache_dir=digits_cache, seed=1).splits.val_rows
    assert not torch.equal(other_seed, splits.val_rows)
    capped = build_datamodule("digits", cache_dir=digits_cache, max_train=8, batch_size=4)
    assert (len(capped.splits.train), len(capped.splits.val)) == (8, 500)
    assert torch.equal(capped.splits.val_rows, splits.val_rows)  # max_train leaves val alone
    assert not set(capped.splits.train_rows.tolist()) & val


def test_val_size_zero_validates_on_the_test_split(digits_cache):
    dm = build_datamodule("digits", cache_dir=digits_cache, val_size=0)
    assert dm.val_is_test and len(dm.splits.train) == 4500
    splits = dm.identity()["splits"]
    assert splits["val_is_test"] and splits["val"] == splits["test"] == 500
    assert splits["val_seed"] is None
    _one_line_error(r"val_size=4500 must lie in \[0, 4500\)",
                    build_datamodule("digits", cache_dir=digits_cache, val_size=4500).setup)
    assert load_config([]).data.val_size is None
    with pytest.raises(ConfigError, match="data.val_size=-1 must be >= 0"):
        load_config(["data.val_size=-1"])


def test_streams_validate_on_the_test_split_by_default(tmp_path):
    source = hub_parquet(tmp_path / "c10", train=12, test=4)
    dm = CIFAR10DataModule(source, streaming=True, batch_size=4, cache_dir=str(tmp_path / "c"))
    assert dm.val_is_test and dm.identity()["splits"]["train"] == 12


def test_identity_of_a_local_parquet_source(tmp_path):
    images = table(pixels(12, 28), [i % 10 for i in range(12)])
    source = save_parquet_folder(tmp_path / "pq", images, images.select(range(4)))
    cache = str(tmp_path / "cache")
    first = build_datamodule("mnist", source=source, cache_dir=cache).identity()
    again = build_datamodule("mnist", source=source, cache_dir=cache).identity()
    assert first == again and json.loads(json.dumps(first)) == first
    assert first["source"]["kind"] == "parquet" and first["source"]["file_count"] == 2
    assert first["splits"] == {**first["splits"], "train": 11, "val": 1, "test": 4,
                               "val_is_test": False, "val_seed": 0}
    assert first["version"] == "hub" and first["paper_comparable"]
    table(pixels(14, 28), [0] * 14).to_parquet(str(tmp_path / "pq" /
                                                  "train-00000-of-00001.parquet"))
    changed = build_datamodule("mnist", source=source, cache_dir=cache).identity()
    assert changed["source"]["files_sha256"] != first["source"]["files_sha256"]


def test_identity_of_the_embedded_digits_and_their_ood_variants(tmp_path, digits_cache):
    plain = build_datamodule("digits", cache_dir=digits_cache).identity()
    assert plain == build_datamodule("digits", cache_dir=digits_cache).identity()
    assert plain["source"]["kind"] == "embedded" and plain["version"] == "embedded"
    cache = str(tmp_path / "cache")
    inverted = build_datamodule("digits_inverted", cache_dir=cache, val_size=0)
    assert inverted.identity()["source"]["arrays_sha256"] != plain["source"]["arrays_sha256"]
    digits = build_datamodule("digits", cache_dir=digits_cache, val_size=0)
    bins, labels = digits.example_images(500)
    flipped, same_labels = inverted.example_images(500)
    assert len(flipped) == len(inverted.splits.test) == 500 and torch.equal(labels, same_labels)
    assert torch.equal(flipped[..., 2:30, 2:30], 255 - bins[..., 2:30, 2:30])
    noisy = build_datamodule("digits_noise", cache_dir=cache, val_size=0)
    noisy_bins = noisy.example_images(500)[0][..., 2:30, 2:30]
    assert torch.equal(noisy_bins, digits_arrays("noise")[2])  # seeded: the same
    changed = (noisy_bins != bins[..., 2:30, 2:30]).float().mean()
    assert 0.15 < changed < 0.35  # 30% of pixels hit, some already 0 or 255


def _svhn_parquet(root, rename=None):
    """Parquet files laid out as the Hub repository: cropped_digits/{train,test,extra}-*."""
    label = datasets.ClassLabel(num_classes=10)
    features = datasets.Features({"image": datasets.Image(), rename or "label": label})
    folder = root / "cropped_digits"
    folder.mkdir(parents=True)
    for split, n in (("train", 12), ("test", 5), ("extra", 3)):
        rows = {"image": [Image.fromarray(a) for a in pixels(n, 32, "RGB")],
                rename or "label": [i % 10 for i in range(n)]}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet"))
    return str(root)


def _hub_splits(source, tmp_path):
    """Every split of the Hub layout (the Hub names them in its card; locally: by file)."""
    files = {s: f"{source}/cropped_digits/{s}-00000-of-00001.parquet"
             for s in ("train", "test", "extra")}
    return datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "c"))


def test_svhn_schema_and_loading_from_a_hub_format_copy(tmp_path):
    assert hub_config("ufldl-stanford/svhn") == "cropped_digits"
    source = _svhn_parquet(tmp_path / "svhn")
    check_hub_schema("ufldl-stanford/svhn", _hub_splits(source, tmp_path))
    bad = _hub_splits(_svhn_parquet(tmp_path / "bad", rename="digit"), tmp_path)
    _one_line_error(r"split 'train' has columns \['image', 'digit'\], not the recorded",
                    check_hub_schema, "ufldl-stanford/svhn", bad)
    dm = SVHNDataModule(source, batch_size=4, cache_dir=str(tmp_path / "c"))
    assert dm.image_shape == (3, 32, 32) and dm.num_classes == 10
    assert (len(dm.splits.train), len(dm.splits.val), len(dm.splits.test)) == (11, 1, 5)
    expected = np.asarray(pixels(5, 32, "RGB"))
    assert torch.equal(dm.example_images(5)[0], torch.from_numpy(expected).permute(0, 3, 1, 2))


def test_paper_configs_name_their_data_versions_and_flips():
    for name in ("imagenet32_glow", "imagenet64_glow", "realnvp_imagenet32",
                 "realnvp_imagenet64"):
        assert load_config([f"experiment={name}"]).data.version == "oord", name
    for category in ("bedroom", "church", "tower"):
        assert load_config([f"experiment=realnvp_lsun_{category}"]).data.augment
        assert not load_config([f"experiment=lsun_{category}_glow"]).data.augment


def test_the_digits_hash_is_recorded_once_and_recomputed_for_an_older_cache(tmp_path):
    """The cache holds the arrays' hash from its build; without that file (a cache from before)
    the same hash is computed and recorded."""
    from glow_lightning.data.benchmarks import ARRAYS_HASH, DigitsDataModule, build_digits_cache
    from glow_lightning.data.identity import tensors_sha256

    cache = build_digits_cache(str(tmp_path))
    recorded = (cache / ARRAYS_HASH).read_text().strip()
    assert recorded == tensors_sha256(*digits_arrays())
    (cache / ARRAYS_HASH).unlink()
    dm = DigitsDataModule(cache_dir=str(tmp_path))
    assert dm.source_identity()["arrays_sha256"] == recorded
    assert (cache / ARRAYS_HASH).read_text().strip() == recorded
