"""Experiment files composed from bases: ``base:`` names files in configs/base/ or
configs/experiment/, merged in order under the file's own keys; ``print_config=true`` shows the
result."""

from pathlib import Path

import pytest

import glow_lightning.config as config_module
from glow_lightning.cli import main
from glow_lightning.config import compose, load_config
from glow_lightning.errors import ConfigError


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A configs/ folder of our own, in place of the shipped one."""
    for folder in ("base", "experiment"):
        (tmp_path / folder).mkdir()
    monkeypatch.setattr(config_module, "configs_root", lambda: tmp_path)
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_file_states_only_what_differs_from_its_bases(configs):
    write(configs / "base", "wide", "model:\n  hidden_channels: 64\n  steps: 4\n")
    write(configs / "base", "adam", "optim:\n  optimizer: adam\n  lr: 0.002\n")
    write(configs / "experiment", "parent",
          "base: [wide, adam]\nname: parent\nmodel:\n  steps: 6\n")
    write(configs / "experiment", "child", "base: parent\nname: child\noptim:\n  lr: 0.003\n")
    cfg = load_config(["experiment=child", "model.levels=2"])
    assert (cfg.name, cfg.model.hidden_channels, cfg.model.steps, cfg.model.levels) == (
        "child", 64, 6, 2)
    assert (cfg.optim.optimizer, cfg.optim.lr) == ("adam", 0.003)


def test_bases_that_name_each_other_are_refused_in_one_line(configs):
    a = write(configs / "experiment", "a", "base: b\n")
    write(configs / "experiment", "b", "base: a\n")
    with pytest.raises(ConfigError, match="loop: a -> b -> a") as err:
        compose(a)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("base", ["missing", "../experiment/x", "/etc/passwd"])
def test_a_base_is_a_known_name_never_a_path(configs, base):
    path = write(configs / "experiment", "x", f"base: {base}\n")
    with pytest.raises(ConfigError, match="base") as err:
        compose(path)
    assert "\n" not in str(err.value)


def test_print_config_shows_the_resolved_config_and_trains_nothing(capsys, tmp_path):
    assert main(["train", "experiment=cifar10_glow", "model.steps=3", "print_config=true",
                 f"out_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "name: cifar10_glow" in out and "steps: 3" in out and "lr: 0.001" in out
    assert not any(tmp_path.iterdir())
