"""Bad data and bad configs stop ``glow-lightning train`` at once: exit code 2 and one line on
stderr starting with ``error:``, naming the problem and the fix, never a traceback."""

from __future__ import annotations

from pathlib import Path

import lightning  # noqa: F401 - bind Lightning's log handler to the session's stderr, not capsys'
import pytest

from glow_lightning.cli import main
from tests.data_helpers import pixels, save_disk, save_image_folder, table


def _train_fails(capsys, *words: str) -> str:
    """The one ``error:`` line; it comes last (loaders may draw progress bars before it)."""
    capsys.readouterr()  # only what the command itself prints counts
    assert main(["train", "logger.kind=none", *words]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert [line for line in lines if "error" in line.lower()] == lines[-1:], captured.err
    assert lines[-1].startswith("error: ")
    assert "Traceback" not in captured.err + captured.out
    return lines[-1]


@pytest.mark.parametrize("words, needle", [
    (["optim.lrr=0.1"], "Did you mean: 'lr'?"),
    (["run_nam=x"], "Did you mean: 'run_name'?"),
    (["data.batch_size=many"], "could not be converted to Integer"),
    (["data.n_bits=0"], "data.n_bits=0 must be in 1..8"),
    (["data.n_bits=9"], "data.n_bits=9 must be in 1..8"),
    (["optim.max_skipped_in_row=0"], "optim.max_skipped_in_row=0 must be >= 1"),
    (["checkpoint.every_n_steps=-1"], "checkpoint.every_n_steps=-1 must be >= 0"),
    (["optim.grad_clip=-1"], "optim.grad_clip=-1.0 must be >= 0"),
    (["data.name=cifar100"], "unknown dataset 'cifar100'; choose one of: digits, mnist"),
    (["model.levels=6"], "image_shape spatial size 32x32 must be divisible by 64"),
    (["model.coupling=affin"], "coupling='affin' is not supported; allowed values: additive"),
    (["resume=auto"], "resume=auto needs a fixed run_name"),
    (["resume=/no/such.ckpt"], "resume='/no/such.ckpt' does not exist"),
    (["trainer.budget_minutes=-1"], "trainer.budget_minutes=-1.0 must be > 0"),
    (["trainer.budget_minutes=soon"], "could not be converted to Float"),
    (["optim.decay_fraction=0"], "optim.decay_fraction=0.0 must be in (0, 1]"),
    (["model.net_dtype=float16"], "net_dtype='float16' is not supported; allowed values: float32"),
])
def test_bad_configs(words, needle, tmp_path, capsys):
    err = _train_fails(capsys, *words, f"out_dir={tmp_path}")
    assert needle in err
    assert not list(tmp_path.glob("*/checkpoints"))  # nothing trained


def _disk(tmp: Path, train, test=None) -> str:
    return save_disk(tmp / "src", train, test if test is not None else train)


def _rgb(n: int = 6, size: int = 32):
    return table(pixels(n, size, "RGB"), [0] * n, image_column="img")


def _missing(tmp: Path) -> str:
    return str(tmp / "no_such_folder")


def _no_image_column(tmp: Path) -> str:
    return _disk(tmp, _rgb()) + " data.image_column=pixels"


def _corrupt_file(tmp: Path) -> str:
    files = save_image_folder(tmp / "src", pixels(12, 32, "RGB"))
    files[5].write_bytes(b"not an image")
    return str(tmp / "src")


def _truncated_file(tmp: Path) -> str:
    files = save_image_folder(tmp / "src", pixels(12, 32, "RGB"))
    files[5].write_bytes(files[6].read_bytes()[:200])
    return str(tmp / "src")


def _wrong_size(tmp: Path) -> str:
    return _disk(tmp, _rgb(6, 28))


def _wrong_mode(tmp: Path) -> str:
    return _disk(tmp, table(pixels(6, 32), [0] * 6, image_column="img"))


def _empty_split(tmp: Path) -> str:
    return _disk(tmp, _rgb(), _rgb().select([]))


@pytest.mark.parametrize("make, needle", [
    (_missing, "data source '{tmp}/no_such_folder' does not exist; point data.source= at"),
    (_no_image_column, "image column 'pixels' not found in the train split (columns: img, "
                       "label); set data.image_column="),
    (_corrupt_file, "could not decode image"),
    (_truncated_file, "{tmp}/src/0005.png"),
    (_wrong_size, "CIFAR-10 expects 32x32 images but image 0 of the train split is 28x28; "
                  "set data.image_size=32 to resize"),
    (_wrong_mode, "CIFAR-10 expects 3-channel RGB images but image 0 of the train split is L"),
    (_empty_split, "a split is empty"),
])
def test_bad_data(make, needle, tmp_path, capsys):
    source, *extra = make(tmp_path).split()
    err = _train_fails(capsys, "data.name=cifar10", f"data.source={source}", *extra,
                       f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / 'runs'}")
    assert needle.format(tmp=tmp_path) in err
    if make is _corrupt_file:
        assert f"{tmp_path}/src/0005.png" in err and "remove or replace" in err


def test_resume_from_a_checkpoint_of_another_model(tmp_path, digits_cache, capsys):
    import torch

    from glow_lightning.train.module import GlowModule

    other = GlowModule([1, 32, 32], dict(levels=2, steps=1, hidden_channels=16))
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": other.state_dict(), "hyper_parameters": dict(other.hparams)}, path)
    err = _train_fails(capsys, f"resume={path}", f"data.cache_dir={digits_cache}",
                       "data.max_train=64", "data.max_test=16", "model.levels=2", "model.steps=1",
                       "model.hidden_channels=8", f"out_dir={tmp_path / 'runs'}")
    assert err.startswith(f"error: checkpoint '{path}' does not fit this model (flow.")
    assert "is (16," in err and "but the model has (8," in err
    assert "resume with the model settings it was trained with" in err
