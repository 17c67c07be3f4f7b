"""The ablation as a W&B grid sweep (``sweep.yaml``), so many machines can share the grid.

RealNVP is one cell, not crossed with coupling × permutation, so the sweep's parameters are the
cell name and the seed (a grid over both gives exactly the local runner's cells × seeds). Each
agent run executes ``glow-lightning ablate <base words> cell=<name> seed=<s>``: one cell, one
seed, one W&B run whose config carries ``model.coupling``, ``model.permutation``,
``model.architecture`` and ``seed`` like every local run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from glow_lightning.ablation.grid import Cell

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
