"""Bad data raises DataError with one line naming the problem and the fix."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from glow_lightning.data import (
    CelebAHQDataModule,
    CIFAR10DataModule,
    DataError,
    LSUNTowerDataModule,
    MNISTDataModule,
)
from tests.data_helpers import (
    pixels,
    save_disk,
    save_image_folder,
    save_parquet_folder,
    table,
)


def _raises(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, ValueError)
    return message


def _setup(dm):
    dm.setup("fit")
    return dm


def test_missing_paths(tmp_path):
    missing = str(tmp_path / "nope")
    _raises(rf"data source '{missing}' does not exist; point data.source= at",
            _setup, MNISTDataModule(missing))
    _raises("matches no files", _setup, MNISTDataModule(str(tmp_path / "*.parquet")))
    (tmp_path / "notes.txt").write_text("hi")
    _raises("not a .parquet file", _setup, MNISTDataModule(str(tmp_path / "notes.txt")))


def test_unreachable_hub_points_at_local_sources():
    message = _raises("could not reach the Hugging Face Hub for dataset 'uoft-cs/cifar10'",
                      CIFAR10DataModule().prepare_data)
    assert "data.source=/path/to/folder" in message and "parquet" in message
    _raises("'someone/missing'", _setup, MNISTDataModule("someone/missing"))
    _raises(r"lsun_tower has no Hugging Face Hub copy: point data.source= at local files \(e.g. "
            "export tower_train_lmdb and tower_val_lmdb", _setup, LSUNTowerDataModule())


def test_missing_columns(tmp_path):
    source = save_disk(tmp_path / "d", table(pixels(6, 28), [0] * 6))
    _raises(r"image column 'pixels' not found in the train split \(columns: image, label\); "
            "set data.image_column=", _setup, MNISTDataModule(source, image_column="pixels"))
    unlabelled = save_disk(tmp_path / "u", table(pixels(6, 64, "RGB")))
    _raises("label column 'attr' not found .* set data.label_column=", _setup,
            CelebAHQDataModule(unlabelled, label_column="attr", image_size=64))
    assert _setup(MNISTDataModule(unlabelled, convert_mode=True, image_size=28)).num_classes == 0


def test_corrupt_and_truncated_files_name_split_index_and_path(tmp_path):
    files = save_image_folder(tmp_path / "imgs", pixels(12, 32, "RGB"))
    files[5].write_bytes(b"not an image")
    cache = str(tmp_path / "c")
    message = _raises("could not decode image", _setup, CIFAR10DataModule(str(tmp_path / "imgs"),
                                                                          cache_dir=cache))
    assert str(files[5]) in message and "split" in message and "remove or replace" in message
    files[5].write_bytes(files[6].read_bytes()[:200])  # a truncated PNG
    _raises(str(files[5]), _setup, CIFAR10DataModule(str(tmp_path / "imgs"), cache_dir=cache))


def test_per_item_decoding_names_the_bad_row(tmp_path):
    good = [datasets.Image().encode_example(a) for a in pixels(8, 28)]
    good[3] = {"bytes": b"\x89PNG broken", "path": None}
    bad = datasets.Dataset.from_dict({"image": good}, features=datasets.Features(
        {"image": datasets.Image()}))
    source = save_disk(tmp_path / "bad", bad, bad)
    _raises("could not decode image 3 of the train split", _setup, MNISTDataModule(source))
    lazy = _setup(MNISTDataModule(source, in_memory=False))  # only the first image is checked
    _raises("could not decode image 3 of the test split", lazy.splits.test.__getitem__, 3)


def test_wrong_size_asks_for_image_size(tmp_path):
    small = pixels(12, 28, "RGB")
    source = save_disk(tmp_path / "small", table(small[:10]), table(small[10:]))
    _raises(r"CIFAR-10 expects 32x32 images but image 0 of the train split is 28x28; "
            "set data.image_size=32 to resize", _setup, CIFAR10DataModule(source))
    assert _setup(CIFAR10DataModule(source, image_size=32)).example_images(1)[0].shape == (
        1, 3, 32, 32)


def test_wrong_mode_needs_convert_mode_but_rgba_is_fine(tmp_path):
    gray = save_disk(tmp_path / "gray", table(pixels(10, 32)), table(pixels(2, 32)))
    _raises(r"CIFAR-10 expects 3-channel RGB images but image 0 of the train split is L "
            r"\(grayscale\); convert the data or set data.convert_mode=true",
            _setup, CIFAR10DataModule(gray))
    converted = _setup(CIFAR10DataModule(gray, convert_mode=True)).example_images(2)[0]
    assert torch.equal(converted[:, 0], converted[:, 2])
    rgba_px = pixels(4, 32, "RGBA")
    rgba = save_disk(tmp_path / "rgba", table(rgba_px), table(rgba_px))
    first = _setup(CIFAR10DataModule(rgba)).example_images(4)[0]
    assert torch.equal(first, torch.from_numpy(np.ascontiguousarray(rgba_px[..., :3])).permute(
        0, 3, 1, 2))
    colour = save_disk(tmp_path / "rgb", table(pixels(4, 28, "RGB")))
    _raises(r"MNIST expects 1-channel grayscale \(L\) images", _setup, MNISTDataModule(colour))


def test_empty_splits_and_oversized_validation(tmp_path):
    images = table(pixels(6, 28), [0] * 6)
    none = images.select([])
    _raises("could not load parquet data source .* a split is empty", _setup,
            MNISTDataModule(save_parquet_folder(tmp_path / "p", images, none),
                            cache_dir=str(tmp_path / "c")))
    _raises("could not load disk data source .* a split is empty", _setup,
            MNISTDataModule(save_disk(tmp_path / "e", images, none)))
    source = save_disk(tmp_path / "d", images, table(pixels(2, 28), [0, 1]))
    _raises("the test split is empty", _setup, MNISTDataModule(source, max_test=0))
    _raises("val_size=6 must lie in", _setup, MNISTDataModule(source, val_size=6))
    _raises("fewer than batch_size=64", MNISTDataModule(source).train_dataloader)


def test_production_path_bad_inputs(tmp_path):
    from tests.data_helpers import hub_parquet

    source = hub_parquet(tmp_path / "c10", train=20, test=5, shards=3)
    (tmp_path / "c10" / "plain_text" / "train-00001-of-00003.parquet").unlink()
    _raises(r"lacks 1 of the 3 'train' shards \(first missing: .*train-00001-of-00003.parquet\);"
            " copy the missing files", _setup, CIFAR10DataModule(source))
    disk = save_disk(tmp_path / "d", table(pixels(6, 32, "RGB"), [0] * 6),
                     table(pixels(2, 32, "RGB"), [0] * 2))
    _raises("data.streaming=true cannot stream the save_to_disk folder", _setup,
            CIFAR10DataModule(disk, streaming=True))
    _raises("could not reach the Hugging Face Hub for dataset 'uoft-cs/cifar10'",
            CIFAR10DataModule(streaming=True).prepare_data)
    with_val = hub_parquet(tmp_path / "v", train=20, test=5)
    _raises("with data.streaming=true validation uses the test split: set data.val_size=0",
            _setup, CIFAR10DataModule(with_val, streaming=True, val_size=4))


def test_hub_schema_is_recorded_for_every_default_and_checked():
    from glow_lightning.data import DATASETS
    from glow_lightning.data.schemas import HUB_SCHEMAS, check_hub_schema

    for cls in DATASETS.values():
        if cls.default_source is None:
            continue
        schema = HUB_SCHEMAS[cls.default_source]  # every default Hub id is recorded
        assert schema.image == cls.default_image_column, cls.name
        assert any(name in schema.splits for name in cls.test_split_names), cls.name
        if cls.default_label_column is None:
            assert schema.label is None or schema.classes == 0
    good = {"train": table(pixels(3, 32, "RGB"), [0] * 3, image_column="img"),
            "test": table(pixels(2, 32, "RGB"), [0] * 2, image_column="img")}
    with pytest.warns(UserWarning, match="has 3 rows; its recorded schema has 50000"):
        check_hub_schema("uoft-cs/cifar10", good)  # another revision: a warning only
    renamed = {k: v.rename_column("img", "image") for k, v in good.items()}
    _raises(r"split 'train' has columns \['image', 'label'\], not the recorded \['img', "
            "'label'\\]", check_hub_schema, "uoft-cs/cifar10", renamed)
    _raises(r"has splits \['train'\], but its recorded schema has \['test', 'train'\] "
            r"\(missing: test\)", check_hub_schema, "uoft-cs/cifar10", {"train": good["train"]})


def test_an_unreachable_hub_is_found_out_at_once_without_offline_mode(monkeypatch):
    """Without HF_HUB_OFFLINE, one quick request finds out the Hub is unreachable (where it is
    reachable the made-up id is not found): one line either way, before ``datasets`` retries."""
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    message = _raises("glow-lightning-tests/no-such-dataset", _setup,
                      MNISTDataModule("glow-lightning-tests/no-such-dataset"))
    assert "could not reach the Hugging Face Hub" in message or "was not found" in message
    assert "HF_HUB_OFFLINE=1" in message or "check data.source=" in message
