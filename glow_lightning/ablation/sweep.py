"""The ablation as W&B grid sweeps, so many machines can share the grid.

``sweep.yaml``: RealNVP is one cell, not crossed with coupling × permutation, so the sweep's
parameters are the cell name and the seed (a grid over both gives exactly the local runner's
cells × seeds). Each agent run executes ``glow-lightning ablate <base words> cell=<name>
seed=<s>``: one cell, one seed, one W&B run whose config carries ``model.coupling``,
``model.permutation``, ``model.architecture`` and ``seed`` like every local run.

``sweep_train_<architecture>.yaml`` (``glow-lightning ablate … sweep=wandb``): the same grid as
plain ``glow-lightning train`` runs whose parameters are the grid's own config keys
(``model.coupling``, ``model.permutation``, any axis, ``seed``), so a sweep can be edited, widened
or turned into a random or Bayesian search like any W&B sweep. A grid sweep is one Cartesian
product, so the cells are split into products: one file for the Glow cells, one for RealNVP
(whose own settings are fixed words of its command). The agent passes the parameters with the
``${args_no_hyphens}`` macro (``model.coupling=affine seed=1``), which is what ``train`` takes.
The ablation's ``data.seed`` follows the seed; here it stays the base config's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from glow_lightning.ablation.grid import Cell
from glow_lightning.errors import ConfigError

ARGS = "${args_no_hyphens}"


def sweep_config(cells: list[Cell], seeds: list[int], base_words: list[str], name: str,
                 project: str) -> dict[str, Any]:
    """The sweep as a plain dict (method grid, command, parameters ``cell`` and ``seed``)."""
    return {
        "name": name,
        "project": project,
        "program": "glow-lightning",
        "method": "grid",
        "command": ["glow-lightning", "ablate", *base_words, ARGS],
        "parameters": {
            "cell": {"values": [c.name for c in cells]},
            "seed": {"values": list(seeds)},
        },
    }


def _header(cells: list[Cell], seeds: list[int]) -> str:
    lines = [f"# W&B grid sweep: {len(cells)} cells x {len(seeds)} seeds = "
             f"{len(cells) * len(seeds)} runs.",
             "# Start:  wandb sweep sweep.yaml      then on every machine:  wandb agent "
             "<entity>/<project>/<sweep id>",
             "# Each run: glow-lightning ablate <words> cell=<cell> seed=<seed> (one cell, one "
             "seed). Cells:"]
    lines += [f"#   {c.name}: {' '.join(c.overrides())}" for c in cells]
    if any(c.architecture == "realnvp" for c in cells):
        lines.append("# RealNVP is a single cell (its masked couplings fix coupling and "
                     "permutation).")
    return "\n".join(lines) + "\n"


def write_sweep(path: Path, cells: list[Cell], seeds: list[int], base_words: list[str],
                name: str, project: str) -> Path:
    config = sweep_config(cells, seeds, base_words, name, project)
    body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(_header(cells, seeds) + body)
    return Path(path)


def _values(cell: Cell) -> dict[str, str]:
    return dict(word.split("=", 1) for word in cell.overrides())


def products(cells: list[Cell]) -> dict[str, list[Cell]]:
    """The cells split into blocks that each form one Cartesian product (same architecture,
    same extra overrides), named by architecture (``glow``, ``realnvp``, ``glow-2``, …)."""
    blocks: dict[tuple[str, tuple[tuple[str, str], ...]], list[Cell]] = {}
    for cell in cells:
        blocks.setdefault((cell.architecture, tuple(sorted(cell.extra.items()))), []).append(cell)
    named: dict[str, list[Cell]] = {}
    for (arch, _), block in blocks.items():
        named[arch if arch not in named else f"{arch}-{len(named) + 1}"] = block
    return named


def train_sweep_config(cells: list[Cell], seeds: list[int], words: tuple[list[str], list[str]],
                       name: str, project: str) -> dict[str, Any]:
    """A grid sweep of ``glow-lightning train`` runs over ``cells`` (one product, see
    :func:`products`) × ``seeds``: the keys whose value differs between cells are parameters,
    the others fixed words of the command, between ``words`` (the ablation file's, then the
    command line's, as a cell of ``glow-lightning ablate`` orders them)."""
    per = [_values(c) for c in cells]
    varying = {k: list(dict.fromkeys(v[k] for v in per)) for k in per[0]
               if len({v[k] for v in per}) > 1}
    if math.prod(len(v) for v in varying.values()) != len(cells):
        raise ConfigError(f"cells {', '.join(c.name for c in cells)} are not one grid of "
                          f"{', '.join(varying)}; select a full grid with cells=")
    fixed = [f"{k}={v}" for k, v in per[0].items() if k not in varying]
    return {"name": name, "project": project, "program": "glow-lightning", "method": "grid",
            "command": ["glow-lightning", "train", *words[0], *fixed, *words[1], ARGS],
            "parameters": {**{k: {"values": v} for k, v in varying.items()},
                           "seed": {"values": list(seeds)}}}


def write_train_sweeps(out: Path, cells: list[Cell], seeds: list[int],
                       words: tuple[list[str], list[str]], name: str, project: str) -> list[Path]:
    """``<out>/sweep_train_<block>.yaml`` for every block of :func:`products`."""
    paths = []
    for block_name, block in products(cells).items():
        config = train_sweep_config(block, seeds, words, f"{name}-{block_name}", project)
        runs = len(block) * len(seeds)
        header = (f"# W&B grid sweep of glow-lightning train: {block_name}, {runs} runs.\n"
                  "# Start:  wandb sweep <this file>      then on every machine:  wandb agent "
                  "<entity>/<project>/<sweep id>\n")
        path = Path(out) / f"sweep_train_{block_name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + yaml.safe_dump(config, sort_keys=False))
        paths.append(path)
    return paths
