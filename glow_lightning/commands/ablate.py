"""``glow-lightning ablate``: the Glow Figure 3 grid (coupling × permutation) plus RealNVP, × seeds.

    glow-lightning ablate                                   # configs/ablation/digits.yaml
    glow-lightning ablate experiment=cifar10_glow budget_steps=20000 seeds=3 out=runs/abl-c10
    glow-lightning ablate cells=additive-reverse,realnvp budget_minutes=1 seeds=1 out=/tmp/a
    glow-lightning ablate cell=affine-invconv seed=1 ...     # one cell, one seed (sweep runs)
    glow-lightning ablate sweep=wandb out=runs/abl            # W&B sweeps of `train` runs

Own keys: ``ablation=`` (a configs/ablation name or YAML path; the default ``digits`` applies
when neither ``ablation=``, ``experiment=`` nor ``config=`` is given), ``budget_steps=``,
``budget_minutes=``, ``seeds=`` (a count: seeds 0..n-1), ``cells=`` / ``cell=`` (restrict the
grid), ``out=``, ``group=`` (W&B group; default: the name of ``out``), ``sweep_only=true`` (write
``<out>/sweep.yaml`` and stop), ``sweep=wandb`` (write ``<out>/sweep_train_<glow|realnvp>.yaml``,
W&B grid sweeps of ``glow-lightning train`` runs over the grid's config keys, and stop),
``dry_run=true`` (every cell, seed 0, a few steps on a few images, no logger: a cluster grid
cannot fail on a config error in its last cell). ``seed=`` pins one seed.
Every other word is a config override for every cell, applied after the ablation file (its
``cell_overrides`` included); the grid's own keys (architecture, coupling, permutation) are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from glow_lightning.commands.args import parse_flag, parse_number, split_keys
from glow_lightning.config import load_config
from glow_lightning.errors import ConfigError

if TYPE_CHECKING:  # the ablation package pulls in Lightning: imported when the command runs
    from glow_lightning.ablation import Ablation, AblationSpec, Budget

HELP = ("coupling x permutation grid + RealNVP x seeds: [ablation=digits] "
        "[budget_steps=N | budget_minutes=M] seeds=3 [cells=a,b] out=DIR [overrides]")

DEFAULT_ABLATION = "digits"
GRID_KEYS = ("model.architecture", "model.coupling", "model.permutation")
OWN = ("ablation", "budget_steps", "budget_minutes", "seeds", "cells", "cell", "out", "group",
       "sweep_only", "dry_run", "sweep")
DRY_RUN = ["data.max_train=8", "data.max_test=2", "data.batch_size=2", "data.eval_batch_size=2",
           "data.val_size=0", "data.num_workers=0", "trainer.devices=1", "trainer.num_nodes=1",
           "trainer.strategy=auto", "trainer.limit_val_batches=1", "trainer.max_time=null",
           "checkpoint.every_n_steps=0", "callbacks.enabled=false", "logger.kind=none",
           "optim.warmup_steps=1"]


def _split(words: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    return split_keys(words, OWN)


def _spec(mine: dict[str, str], rest: list[str]) -> AblationSpec:
    from glow_lightning.ablation import AblationSpec, load_spec

    chosen = any(w.startswith(("experiment=", "config=")) for w in rest)
    name = mine.get("ablation") or (None if chosen else DEFAULT_ABLATION)
    if name is None:
        return AblationSpec(name=load_config(rest).name)
    spec = load_spec(name)
    if chosen:
        spec.experiment = None  # the experiment given on the command line wins
    return spec


def _budget(mine: dict[str, str], spec: AblationSpec) -> Budget:
    from glow_lightning.ablation import Budget

    if "budget_steps" not in mine and "budget_minutes" not in mine:
        return Budget(spec.budget_steps, spec.budget_minutes)
    steps = mine.get("budget_steps")  # either given on the command line replaces the file's
    minutes = mine.get("budget_minutes")
    return Budget(int(parse_number("budget_steps", steps, int)) if steps else None,
                  parse_number("budget_minutes", minutes, float) if minutes else None)


def _seeds(mine: dict[str, str], rest: list[str], spec: AblationSpec
           ) -> tuple[list[int], list[str]]:
    """``seed=s`` pins one seed; else ``seeds=n`` (or the file's count) gives 0..n-1."""
    pinned = [w.partition("=")[2] for w in rest if w.startswith("seed=")]
    rest = [w for w in rest if not w.startswith("seed=")]
    if pinned:
        return [int(parse_number("seed", pinned[-1], int))], rest
    count = int(parse_number("seeds", mine["seeds"], int)) if "seeds" in mine else spec.seeds
    if count < 1:
        raise ConfigError(f"seeds={count} must be >= 1")
    return list(range(count)), rest


def plan(words: Sequence[str]) -> Ablation:
    """Turn the command's words into an :class:`Ablation` (no training happens here)."""
    from glow_lightning.ablation import Ablation, Budget, select

    mine, rest = _split(words)
    fixed = [w for w in rest if w.partition("=")[0] in GRID_KEYS]
    if fixed:
        raise ConfigError(f"'{fixed[0]}' is set by the grid's cells; choose cells with cells= "
                          "(e.g. cells=affine-invconv,realnvp) or change the ablation file")
    spec = _spec(mine, rest)
    seeds, rest = _seeds(mine, rest, spec)
    try:
        cells = select(spec.grid(), mine.get("cells") or mine.get("cell"))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    dry = parse_flag(mine, "dry_run")
    out = Path(mine.get("out") or f"runs/ablation-{spec.name}{'-dry' if dry else ''}")
    group = mine.get("group") or out.resolve().name
    budget = Budget(steps=2) if dry else _budget(mine, spec)
    budget.overrides()  # fail now, not after the first cell, when there is no budget
    sweep_words = [f"{k}={mine[k]}" for k in ("ablation", "budget_steps", "budget_minutes")
                   if k in mine] + [f"out={out}", f"group={group}", *rest]
    claims = [(claim_label(c[0], c[2]), c[0], c[2]) for c in spec.claims] if spec.claims else None
    return Ablation(spec.name, spec.base_overrides(), cells, [0] if dry else seeds, budget,
                    out, group, sweep_words, [*rest, *(DRY_RUN if dry else [])], claims)


def claim_label(lower: str, higher: str) -> str:
    """A short name for the claim ``lower < higher``: the parts of the two cell names that
    differ, then the ones they share.

    >>> claim_label("affine-invconv-scale_fn=softclamp-net_actnorm=true",
    ...             "affine-invconv-scale_fn=sigmoid-net_actnorm=true")
    'scale_fn=softclamp < sigmoid (affine-invconv, net_actnorm=true)'
    """
    a, b = lower.split("-"), higher.split("-")
    if len(a) != len(b):
        return f"{lower} < {higher}"
    shared = [x for x, y in zip(a, b, strict=True) if x == y]
    differ = [(x, y.partition("=")[2] or y) for x, y in zip(a, b, strict=True) if x != y]
    text = ", ".join(f"{x} < {y}" for x, y in differ)
    return f"{text} ({'-'.join(shared[:2])}{', ' if shared[2:] else ''}{', '.join(shared[2:])})"


def main(words: Sequence[str]) -> int:
    from glow_lightning.ablation import run_grid, write_sweep_file, write_train_sweep_files
    from glow_lightning.train.launch import is_rank_zero

    ablation = plan(words)
    ablation.out.mkdir(parents=True, exist_ok=True)
    sweep = _split(words)[0].get("sweep")
    if sweep is not None:
        if sweep != "wandb":
            raise ConfigError(f"sweep={sweep!r} is not known; use sweep=wandb (W&B sweep files "
                              "of glow-lightning train runs) or leave it out")
        for path in write_train_sweep_files(ablation):
            print(f"wrote {path}")
        return 0
    if parse_flag(_split(words)[0], "sweep_only"):
        print(f"wrote {write_sweep_file(ablation)}")
        return 0
    rows = run_grid(ablation)
    if is_rank_zero():
        print(f"{len(rows)}/{len(ablation.jobs())} runs finished; "
              f"table: {ablation.out / 'results.md'}")
    return 0

