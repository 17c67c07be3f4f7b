"""The command line end to end on a tiny model: train, test, sample, interpolate, errors."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from glow_lightning.callbacks import SampleGrid
from glow_lightning.cli import main
from glow_lightning.commands.checkpoint import load_module

TINY = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=64",
        "data.max_test=16", "data.batch_size=16", "trainer.max_steps=3", "trainer.max_time=null",
        "trainer.enable_progress_bar=false", "logger.kind=csv", "callbacks.every_n_validations=1",
        "trainer.devices=1", "trainer.strategy=auto", "trainer.check_val_every_n_epoch=1",
        "callbacks.num_samples=4", "callbacks.interpolation_pairs=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_cache):
    out = tmp_path_factory.mktemp("runs")
    code = main(["train", *TINY, f"data.cache_dir={digits_cache}", f"out_dir={out}",
                 "run_name=tiny"])
    assert code == 0
    return out / "tiny", digits_cache


def test_train_writes_config_checkpoint_and_media(trained):
    run, _ = trained
    assert (run / "config.yaml").read_text().count("hidden_channels: 8") == 1
    assert (run / "checkpoints" / "last.ckpt").is_file()
    grids = sorted((run / "media" / "samples").glob("*_T*.png"))
    assert len(grids) >= 4
    assert list((run / "media" / "interpolations").glob("*.png"))


def test_test_sample_interpolate_commands(trained, tmp_path, capsys):
    run, cache = trained
    ckpt = str(run / "checkpoints" / "last.ckpt")
    assert main(["test", f"ckpt={ckpt}", f"data.cache_dir={cache}"]) == 0
    printed = capsys.readouterr().out
    bpd = float(printed.split("test/bpd = ")[1].split()[0])
    terms = [float(line.split(":")[1].split()[0]) for line in printed.splitlines()
             if line.strip().startswith(("level ", "quantisation"))]
    assert len(terms) == 3 and abs(sum(terms) - bpd) < 1e-3  # 2 levels + quantisation
    assert main(["sample", f"ckpt={ckpt}", "y=3", f"out={tmp_path / 'y.png'}"]) == 2
    assert "y= needs a class-conditional checkpoint" in capsys.readouterr().err
    out = tmp_path / "grid.png"
    assert main(["sample", f"ckpt={ckpt}", "n=9", "temperature=0.7", f"out={out}"]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * 34 + 2, 3 * 34 + 2)  # 3x3 grid of 32x32 digits, 2 px borders
    interp = tmp_path / "interp.png"
    assert main(["interpolate", f"ckpt={ckpt}", "pairs=2", "steps=5", f"out={interp}",
                 f"data.cache_dir={cache}"]) == 0
    assert np.asarray(Image.open(interp)).shape == (2 * 34 + 2, 5 * 34 + 2)


@pytest.mark.parametrize("words, needle", [
    (["train", "model.stepz=3"], "Did you mean: 'steps'?"),
    (["train", "model.steps=abc"], "could not be converted to Integer"),
    (["train", "experiment=nope"], "unknown experiment 'nope'; available: "),
    (["train", "data.n_bits=9"], "data.n_bits=9 must be in 1..8"),
    (["sample", "ckpt=/no/such.ckpt"], "checkpoint '/no/such.ckpt' does not exist"),
])
def test_config_errors_are_one_line(words, needle, capsys):
    assert main(words) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err


def test_class_conditional_rows_and_sample_y(tmp_path, digits_cache, capsys):
    code = main(["train", *TINY, "model.conditional=true", f"data.cache_dir={digits_cache}",
                 f"out_dir={tmp_path}", "run_name=cond", "callbacks.num_samples=16"])
    assert code == 0
    ckpt = tmp_path / "cond" / "checkpoints" / "last.ckpt"
    out = tmp_path / "three.png"
    assert main(["sample", f"ckpt={ckpt}", "y=3", "n=4", f"out={out}"]) == 0
    assert np.asarray(Image.open(out)).shape == (2 * 34 + 2, 2 * 34 + 2)
    assert main(["sample", f"ckpt={ckpt}", "y=10", f"out={out}"]) == 2
    assert "y=10 is not a class of this checkpoint; choose 0..9" in capsys.readouterr().err
    labels = SampleGrid(num_samples=16)._labels(load_module(ckpt).flow)
    assert labels.view(4, 4).tolist() == [[r] * 4 for r in range(4)]  # one row per class


def test_help_lists_commands():
    result = subprocess.run([sys.executable, "-m", "glow_lightning.cli", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("train", "test", "sample", "interpolate"):
        assert command in result.stdout
    assert "model.permutation: reverse, shuffle, invconv, invconv_lu" in result.stdout
    assert "model.realnvp.flow_norm: batchnorm, actnorm, none" in result.stdout
