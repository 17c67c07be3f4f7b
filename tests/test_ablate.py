"""The ablation runner: grid, plan, sweep file, reports, and a real resumable run that is killed
mid-grid and completed by a rerun (tiny model, two cells)."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from glow_lightning.ablation import Budget, build_grid, load_spec, select, sweep_config
from glow_lightning.ablation.history import read_history, write_history
from glow_lightning.ablation.plot import smooth
from glow_lightning.ablation.report import markdown_table, ranking_table, summarise, verdicts
from glow_lightning.commands.ablate import main as cmd_ablate
from glow_lightning.commands.ablate import plan
from glow_lightning.config import load_config
from glow_lightning.errors import ConfigError
from glow_lightning.flows import build_flow
from glow_lightning.flows.priors import SplitPrior, TopPrior
from tests.wandb_reader import (
    WANDB_ENV_DIRS,
    find_run_dirs,
    isolate_wandb,
    read_records,
    read_summary,
)

GLOW_CELLS = ["additive-reverse", "additive-shuffle", "additive-invconv", "affine-reverse",
              "affine-shuffle", "affine-invconv"]
TINY = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=64",
        "data.max_test=16", "data.batch_size=16", "trainer.enable_progress_bar=false",
        "callbacks.enabled=false", "trainer.num_threads=1", "trainer.accelerator=cpu",
        "trainer.devices=1", "trainer.strategy=auto"]


# ----------------------------------------------------------------------------- the grid
def test_grid_is_figure3_plus_one_realnvp_cell():
    cells = build_grid()
    assert [c.name for c in cells] == [*GLOW_CELLS, "realnvp"]
    realnvp = cells[-1]
    assert realnvp.architecture == "realnvp" and "model.architecture=realnvp" in realnvp.overrides()
    for cell in cells[:-1]:
        coupling, permutation = cell.name.split("-")
        assert cell.overrides() == ["model.architecture=glow", f"model.coupling={coupling}",
                                    f"model.permutation={permutation}"]
        assert f"coupling:{coupling}" in cell.tags()


def test_select_restricts_and_rejects_unknown_cells():
    cells = build_grid()
    assert [c.name for c in select(cells, "realnvp,additive-reverse")] == ["additive-reverse",
                                                                            "realnvp"]
    with pytest.raises(ValueError, match="unknown cell"):
        select(cells, "affine-lu")


def test_budget_overrides_mean_what_they_mean_in_train():
    assert Budget(steps=50).overrides() == ["trainer.max_epochs=-1", "trainer.max_steps=50",
                                            "trainer.budget_minutes=null"]
    assert Budget(steps=50, minutes=1.5).overrides()[1:] == ["trainer.max_steps=50",
                                                             "trainer.budget_minutes=1.5"]
    with pytest.raises(ConfigError, match="budget"):
        Budget().overrides()


def test_digits_spec_cells_share_one_model():
    spec = load_spec("digits")
    assert spec.seeds == 3 and spec.budget_steps and len(spec.grid()) == 7
    glow = [load_config([*spec.base_overrides(), *c.overrides()]) for c in spec.grid()[:-1]]
    assert len({(c.model.levels, c.model.steps, c.model.hidden_channels) for c in glow}) == 1
    realnvp = load_config([*spec.base_overrides(), *spec.grid()[-1].overrides()])
    assert not realnvp.model.learn_top and not realnvp.model.split_prior  # its own N(0, I) prior
    sizes = [sum(p.numel() for p in build_flow((1, 32, 32), c.model).parameters())
             for c in (glow[-1], realnvp)]
    assert abs(sizes[1] - sizes[0]) / sizes[0] < 0.05  # matched on parameter count


# ----------------------------------------------------------------------------- the command's words
def test_plan_defaults_to_the_digits_ablation(tmp_path):
    ab = plan([f"out={tmp_path / 'abl'}"])
    assert ab.name == "digits" and len(ab.jobs()) == 21 and ab.group == "abl"
    assert "experiment=digits_glow" in ab.words


def test_plan_pins_a_seed_restricts_cells_and_keeps_overrides(tmp_path):
    ab = plan(["cell=realnvp", "seed=3", "budget_minutes=2", "model.hidden_channels=16",
               f"out={tmp_path}"])
    assert [(c.name, s) for c, s in ab.jobs()] == [("realnvp", 3)]
    assert ab.budget == Budget(None, 2.0)
    assert ab.overrides == ["model.hidden_channels=16"]
    with pytest.raises(ConfigError, match="set by the grid"):
        plan(["model.coupling=affine"])


def test_plan_with_an_explicit_experiment_ignores_the_digits_file():
    ab = plan(["experiment=mnist_glow", "budget_steps=10"])
    assert ab.name == "mnist_glow" and "model.hidden_channels=32" not in ab.words
    with pytest.raises(ConfigError, match="budget"):
        plan(["experiment=mnist_glow"])


# ----------------------------------------------------------------------------- sweep and reports
def test_sweep_matches_the_grid(tmp_path):
    ab = plan([f"out={tmp_path / 'abl'}", "model.hidden_channels=16"])
    from glow_lightning.ablation.sweep import write_sweep

    path = write_sweep(tmp_path / "sweep.yaml", ab.cells, ab.seeds, ab.sweep_words, ab.group, "p")
    sweep = yaml.safe_load(path.read_text())
    assert sweep == sweep_config(ab.cells, ab.seeds, ab.sweep_words, ab.group, "p")
    assert sweep["method"] == "grid" and sweep["program"] == "glow-lightning"
    assert sweep["command"][:2] == ["glow-lightning", "ablate"]
    assert sweep["command"][-1] == "${args_no_hyphens}"
    assert sweep["parameters"]["cell"]["values"] == [*GLOW_CELLS, "realnvp"]
    assert sweep["parameters"]["seed"]["values"] == [0, 1, 2]
    # every sweep run is one job of the local grid, with the same words
    for cell in sweep["parameters"]["cell"]["values"]:
        one = plan([*sweep["command"][2:-1], f"cell={cell}", "seed=1"])
        assert [(c.name, s) for c, s in one.jobs()] == [(cell, 1)]
        assert (one.words, one.overrides) == (ab.words, ab.overrides)
        assert (one.out, one.group) == (ab.out, ab.group)


def test_summary_and_table():
    rows = [dict(cell=c, seed=s, coupling="affine", permutation=c, architecture="glow",
                 test_bpd=bpd, steps=10, wall_s=1.0, params=7)
            for c, s, bpd in [("a", 0, 2.0), ("a", 1, 3.0), ("b", 0, 1.0)]]
    a, b = summarise(rows)
    assert (a["cell"], a["test_bpd_mean"], a["seeds"]) == ("a", 2.5, 2)
    assert b["test_bpd_std"] == 0.0
    assert a["test_bpd_ci95"] == pytest.approx(12.706 * 0.70711 / 2**0.5, rel=1e-4)  # t(1)
    table = markdown_table([a, b])
    assert "| a | affine | a | 2.500 ± 6.353 | 0.707 | 2 | 10 |" in table
    assert "| b | affine | b | 1.000 | 0.000 | 1 | 10 |" in table  # one seed: no interval


def _rows(bpds: dict[str, list[float]]) -> list[dict]:
    return [dict(cell=c, seed=s, test_bpd=v) for c, vs in bpds.items() for s, v in enumerate(vs)]


def test_paired_verdicts():
    rows = _rows({"a": [1.0, 1.1, 1.2], "b": [1.5, 1.7, 1.6], "c": [1.4, 1.0, 1.3]})
    found = {v.label: v.outcome for v in verdicts(rows, [("a<b", "a", "b"), ("b<a", "b", "a"),
                                                        ("a<c", "a", "c")])}
    assert found == {"a<b": "holds", "b<a": "does not hold", "a<c": "inconclusive"}


def test_late_ranking_is_unsettled_only_by_swaps_the_seeds_can_tell_apart():
    rows = _rows({"a": [1.0, 1.1, 1.2], "b": [1.5, 1.7, 1.6], "c": [1.4, 1.0, 1.3]})
    settled = ranking_table([(8, ["a", "b"]), (10, ["a", "b"])], rows)
    assert "does not change" in settled
    tie = ranking_table([(8, ["a", "c", "b"]), (10, ["c", "a", "b"])], rows)
    assert "only between cells the seeds cannot tell apart" in tie and "a / c" in tie
    apart = ranking_table([(8, ["a", "c", "b"]), (10, ["b", "a", "c"])], rows)
    assert "still changes between cells the seeds tell apart: a / b" in apart


def test_history_and_curves(tmp_path):
    write_history(tmp_path / "h.csv", [(1, 5.0), (2, 4.0)])
    assert read_history(tmp_path / "h.csv") == [(1, 5.0), (2, 4.0)]
    assert read_history(tmp_path / "missing.csv") == []
    assert smooth(np.array([4.0, 3.0]), 10).tolist() == [4.0, 3.5]


# ----------------------------------------------------------------------------- real runs
def _words(out: Path, cache: str) -> list[str]:
    return ["cells=additive-reverse,realnvp", "seeds=1", "budget_steps=3", f"out={out}",
            f"data.cache_dir={cache}", "checkpoint.every_n_steps=1", "checkpoint.keep=3", *TINY]


def _check_complete(out: Path) -> None:
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["cell"], r["seed"], r["steps"]) for r in rows] == [("additive-reverse", "0", "3"),
                                                                  ("realnvp", "0", "3")]
    assert all(float(r["test_bpd"]) > 0 and int(r["params"]) > 0 for r in rows)
    assert "| realnvp | affine | alternating masks |" in (out / "results.md").read_text()
    assert (out / "bpd_vs_step.png").stat().st_size > 1000
    assert len(read_history(out / "runs" / "realnvp-seed0" / "bpd_history.csv")) == 3


@pytest.fixture(scope="module")
def interrupted_and_rerun(tmp_path_factory, digits_cache):
    """In process: a 2-cell grid; then the second cell is put back to where a run killed after
    step 2 would have left it (no result, its step-2 checkpoint as the last one) and the same
    command runs again."""
    root = tmp_path_factory.mktemp("ablation")
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, root / "wandb_env")
        assert cmd_ablate(_words(out, digits_cache)) == 0
        first = out / "cells" / "additive-reverse-seed0.json"
        stamp = first.stat().st_mtime_ns
        second = out / "cells" / "realnvp-seed0.json"
        uninterrupted = json.loads(second.read_text())
        second.unlink()
        folder = out / "runs" / "realnvp-seed0" / "checkpoints"
        (folder / "step0000002.ckpt").replace(folder / "last.ckpt")
        (folder / "step0000003.ckpt").unlink()
        assert cmd_ablate(_words(out, digits_cache)) == 0
    return out, first, stamp, uninterrupted


def test_rerun_skips_finished_cells_and_continues_the_interrupted_one(interrupted_and_rerun):
    out, first, stamp, uninterrupted = interrupted_and_rerun
    assert first.stat().st_mtime_ns == stamp  # not rerun
    resumed = json.loads((out / "cells" / "realnvp-seed0.json").read_text())
    assert resumed["steps"] == 3  # from step 2 on, not from scratch
    assert resumed["test_bpd"] == pytest.approx(uninterrupted["test_bpd"], abs=1e-6)  # exact
    assert resumed["model"]["architecture"] == "realnvp" and not resumed["model"]["learn_top"]
    _check_complete(out)


def test_a_rerun_with_another_budget_is_refused_before_any_training(interrupted_and_rerun,
                                                                    digits_cache, capsys):
    from glow_lightning.cli import main

    out = interrupted_and_rerun[0]
    before = {p: p.read_bytes() for p in sorted((out / "cells").glob("*.json"))}
    words = [w for w in _words(out, digits_cache) if not w.startswith("budget_steps=")]
    assert main(["ablate", *words, "budget_steps=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "was trained with budget {'steps': 3, 'minutes': None}" in err and "out=" in err
    assert before == {p: p.read_bytes() for p in sorted((out / "cells").glob("*.json"))}


def test_each_cell_is_one_wandb_run_in_the_group_plus_a_summary_table(interrupted_and_rerun):
    out, _, _, _ = interrupted_and_rerun
    runs: dict[str, list] = {}
    for run_dir in find_run_dirs(out):
        (record,) = [r.run for r in read_records(run_dir) if r.WhichOneof("record_type") == "run"]
        runs.setdefault(record.display_name, []).append((record, run_dir))
    # one W&B run per cell: the resumed cell logged into its run again (same id, a second
    # offline folder); the summary run is logged once, and again only if results.csv changed
    counts = {k: len(v) for k, v in runs.items()}
    assert counts.pop("out-summary") in (1, 2)
    assert counts == {"additive-reverse-seed0": 1, "realnvp-seed0": 2}
    assert len({r.run_id for r, _ in runs["realnvp-seed0"]}) == 1
    assert {r.run_group for v in runs.values() for r, _ in v} == {"out"}
    cell, _ = runs["realnvp-seed0"][0]
    assert "cell:realnvp" in cell.tags and "seed:0" in cell.tags
    config = {item.key: json.loads(item.value_json) for item in cell.config.update}
    assert config["model"]["architecture"] == "realnvp" and config["seed"] == 0
    assert (config["cell"], config["coupling"], config["architecture"]) == (
        "realnvp", "affine", "realnvp")  # the cell's axes as top-level keys
    summary_dir = runs["out-summary"][-1][1]
    summary = read_summary(summary_dir)
    for key in ("ablation/results", "ablation/summary", "ablation/claims"):  # tables render
        assert summary[key]["_type"] == "table-file", (key, summary[key])
    assert {k for k in summary if k.startswith("test_bpd/")} == {"test_bpd/additive-reverse",
                                                                "test_bpd/realnvp"}
    assert list((summary_dir / "files" / "media" / "table" / "ablation").glob("results_*.json"))


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1")
    env.pop("WANDB_API_KEY", None)
    for name in WANDB_ENV_DIRS:
        (root / name.lower()).mkdir(parents=True, exist_ok=True)
        env[name] = str(root / name.lower())
    return env


def _ablate(words: list[str], env: dict[str, str]) -> subprocess.Popen:
    main = "import sys; from glow_lightning.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", main, "ablate", *words],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_mid_grid_then_rerun_completes_it(tmp_path, digits_cache):
    """A real kill: SIGKILL the runner once the first cell's result exists, run it again."""
    out, env = tmp_path / "out", _env(tmp_path / "wandb_env")
    proc = _ablate(_words(out, digits_cache), env)
    first = out / "cells" / "additive-reverse-seed0.json"
    second = out / "cells" / "realnvp-seed0.json"
    deadline = time.monotonic() + 300
    try:
        while not first.exists():
            assert proc.poll() is None, f"ablate exited early: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "the first cell did not finish in time"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not second.exists(), "the kill came after the grid finished; nothing was tested"
    stamp = first.stat().st_mtime_ns
    rerun = _ablate(_words(out, digits_cache), env)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err[-3000:]
    assert first.stat().st_mtime_ns == stamp  # not rerun
    _check_complete(out)


def test_dry_run_plans_every_cell_of_the_paper_grid_for_a_few_steps():
    ab = plan(["ablation=cifar10", "dry_run=true", "data.source=/data/cifar10"])
    assert [c.name for c, _ in ab.jobs()] == [*GLOW_CELLS, "realnvp"]
    assert {s for _, s in ab.jobs()} == {0} and ab.budget.steps == 2
    assert "logger.kind=none" in ab.overrides and "data.max_train=8" in ab.overrides
    assert ab.out.name == "ablation-cifar10-dry"
    cfg = load_config([*ab.words, *ab.jobs()[-1][0].overrides(), *ab.overrides])
    assert (cfg.model.hidden_channels, cfg.model.realnvp.blocks) == (64, 8)  # the paper's own


@pytest.mark.slow
def test_dry_run_of_the_paper_grid_on_hub_format_data(tmp_path, monkeypatch):
    """Every cell of the CIFAR-10 grid at the paper's scale (L=3, K=32, width 512; RealNVP with
    8 residual blocks) trains 2 steps and tests on a tiny local Hub-format copy."""
    from tests.data_helpers import hub_parquet

    isolate_wandb(monkeypatch, tmp_path / "wandb_env")
    source = hub_parquet(tmp_path / "c10", train=16, test=4)
    out = tmp_path / "dry"
    assert cmd_ablate(["ablation=cifar10", "dry_run=true", f"data.source={source}",
                       f"out={out}", "trainer.accelerator=cpu", "trainer.num_threads=2"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["cell"] for r in rows] == [*GLOW_CELLS, "realnvp"]
    assert all(r["steps"] == "2" and float(r["test_bpd"]) > 0 for r in rows)
    assert int(rows[-2]["params"]) > 40_000_000  # affine-invconv: the paper's 44M Glow


def test_long_cell_names_give_tags_wandb_accepts():
    from glow_lightning.ablation.cell import cell_config

    ab = plan(["ablation=digits_coupling", "out=/tmp/x"])
    cell = ab.cells[-1]
    cfg = cell_config(ab.words, cell, 0, ab.budget, ab.out, ab.group)
    assert len(cell.name) > 64 and all(1 <= len(t) <= 64 for t in cfg.logger.tags)
    assert cfg.logger.extra_config["cell"] == cell.name


def test_prior_spec_crosses_the_blown_up_cells_with_the_bound():
    spec = load_spec("digits_prior")
    cells = {c.name: c for c in spec.grid()}
    assert spec.seeds == 3 and spec.budget_steps == load_spec("digits").budget_steps
    for base in ("additive-shuffle", "additive-reverse", "affine-shuffle"):
        for scale, clamp in (("free", 0.0), ("softclamp", 3.0)):
            cfg = load_config([*spec.base_overrides(), *cells[f"{base}-prior_scale={scale}"]
                               .overrides()])
            flow = build_flow((1, 32, 32), cfg.model)
            priors = [m for m in flow.modules() if isinstance(m, (SplitPrior, TopPrior))]
            assert len(priors) == 3 and {m.clamp for m in priors} == {clamp}  # 2 splits + top
    assert all(a in cells and b in cells for a, _, b in spec.claims or [])
