"""``glow-lightning ablate … sweep=wandb``: W&B grid sweeps of ``glow-lightning train`` runs over
the ablation grid's config keys; the command line the agent builds from such a file trains,
offline, into a W&B run that says which cell it is."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from glow_lightning.ablation.cell import cell_config
from glow_lightning.commands.ablate import main as cmd_ablate
from glow_lightning.commands.ablate import plan
from glow_lightning.config import load_config, to_dict
from glow_lightning.errors import ConfigError
from tests.test_ablate import TINY, _env
from tests.wandb_reader import find_run_dir, read_config, read_run


def agent_command(sweep: dict, values: dict) -> list[str]:
    """The command ``wandb agent`` runs for one parameter set: its own macro expansion
    (``wandb_agent.Agent._command_run``) with W&B's own argument formats."""
    from wandb.sdk.launch.sweeps import utils

    macros = utils.create_sweep_command_args({"args": {k: {"value": v}
                                                       for k, v in values.items()}})
    command: list[str] = []
    for word in utils.create_sweep_command(sweep["command"]):
        word = str(word)
        is_macro = word.startswith("${") and word.endswith("}")
        command += (macros.get(word[2:-1]) or []) if is_macro else [word]
    return command


def grid(sweep: dict) -> list[dict]:
    """Every parameter set of a grid sweep, as the sweep controller enumerates them."""
    params = sweep["parameters"]
    return [dict(zip(params, combo, strict=True))
            for combo in itertools.product(*(p["values"] for p in params.values()))]


@pytest.fixture
def sweeps(tmp_path, capsys):
    out = tmp_path / "abl"
    assert cmd_ablate(["sweep=wandb", f"out={out}", "seeds=2", "budget_steps=5"]) == 0
    assert "sweep_train_glow.yaml" in capsys.readouterr().out
    return out, {p.stem.removeprefix("sweep_train_"): yaml.safe_load(p.read_text())
                 for p in sorted(out.glob("sweep_train_*.yaml"))}


def test_train_sweeps_are_the_ablation_grid(sweeps):
    out, found = sweeps
    assert sorted(found) == ["glow", "realnvp"]  # RealNVP is not crossed: a sweep of its own
    glow, realnvp = found["glow"], found["realnvp"]
    assert glow["method"] == "grid" and glow["command"][:2] == ["glow-lightning", "train"]
    assert glow["command"][-1] == "${args_no_hyphens}"
    assert list(glow["parameters"]) == ["model.coupling", "model.permutation", "seed"]
    assert list(realnvp["parameters"]) == ["seed"]
    assert "model.architecture=realnvp" in realnvp["command"]
    ab = plan(["seeds=2", "budget_steps=5", f"out={out}"])
    runs = [(s, values) for s in found.values() for values in grid(s)]
    assert len(runs) == len(ab.jobs()) == 14
    by_name = {c.name: c for c in ab.cells}
    for sweep, values in runs:  # every sweep run is the cell the ablation would run
        cfg = load_config(agent_command(sweep, values)[2:])
        name = ("realnvp" if cfg.model.architecture == "realnvp"
                else f"{cfg.model.coupling}-{cfg.model.permutation}")
        cell = cell_config(ab.words, by_name[name], values["seed"], ab.budget, out, ab.group)
        for section in ("model", "optim", "trainer"):
            assert to_dict(cfg)[section] == to_dict(cell)[section], (name, section)
        assert cfg.seed == values["seed"] and cfg.logger.group == ab.group
        assert cfg.logger.job_type == "ablation-cell"


def test_a_cell_list_that_is_no_grid_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not one grid"):
        cmd_ablate(["sweep=wandb", f"out={tmp_path}", "cells=additive-reverse,affine-shuffle"])
    with pytest.raises(ConfigError, match="sweep='yes'"):
        cmd_ablate(["sweep=yes", f"out={tmp_path}"])


def test_the_agents_command_line_trains_offline(tmp_path, digits_cache):
    """The exact command the agent builds from the file, run as the agent runs it: a process
    with the sweep's run id in its environment."""
    out = tmp_path / "abl"
    words = ["sweep=wandb", f"out={out}", "seeds=1", "budget_steps=2", "cells=affine-invconv",
             f"data.cache_dir={digits_cache}", "checkpoint.every_n_steps=0", *TINY]
    assert cmd_ablate(words) == 0
    sweep = yaml.safe_load((out / "sweep_train_glow.yaml").read_text())
    (values,) = grid(sweep)
    command = agent_command(sweep, values)
    assert command[-1:] == ["seed=0"] and command[0] == "glow-lightning"
    env = dict(_env(tmp_path / "wandb_env"), WANDB_RUN_ID="sweeprun1")
    exe = Path(__import__("sys").executable).parent / "glow-lightning"
    done = subprocess.run([str(exe), *command[1:]], env=env, capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (run_dir,) = (out / "sweep-runs").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 2
    wandb_dir = find_run_dir(run_dir)
    assert wandb_dir.name.endswith("-sweeprun1")
    config = read_config(wandb_dir)
    assert (config["model"]["coupling"], config["model"]["permutation"]) == ("affine", "invconv")
    run = read_run(wandb_dir)
    assert run.run_group == "abl" and run.job_type == "ablation-cell" and "ablation" in run.tags
