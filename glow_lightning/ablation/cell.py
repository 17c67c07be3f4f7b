"""One ablation cell × seed: its config, its training run and its result file.

A cell is finished when ``<out>/cells/<cell>-seed<s>.json`` exists; the file is written
atomically after the test, so a killed run leaves no result. Rerunning the grid continues such a
run from its last checkpoint (``resume=auto``, so set ``checkpoint.every_n_steps``), with its
training history, exactly as if it had not been interrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glow_lightning.ablation.grid import Cell
from glow_lightning.ablation.history import BpdHistory
from glow_lightning.config import ExperimentConfig, load_config, to_dict
from glow_lightning.errors import ConfigError
from glow_lightning.train.launch import is_rank_zero
from glow_lightning.train.run import train


@dataclass(frozen=True)
class Budget:
    """Per-cell training budget: optimiser steps and/or minutes of wall clock, with the meaning
    they have in ``glow-lightning train``: ``trainer.max_steps`` and ``trainer.budget_minutes``
    (the step count planned from the measured step time, capped by the steps)."""

    steps: int | None = None
    minutes: float | None = None

    def record(self) -> dict[str, Any]:
        """What a result file stores of the budget its cell was trained with."""
        return {"steps": self.steps, "minutes": self.minutes}

    def overrides(self) -> list[str]:
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"budget_steps={self.steps} must be >= 1 (optimiser steps per cell)")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"budget_minutes={self.minutes} must be > 0 (minutes per cell)")
        if not self.steps and not self.minutes:
            raise ConfigError("the ablation needs a per-cell budget: budget_steps=N or "
                              "budget_minutes=M (or an ablation= file that sets one)")
        return ["trainer.max_epochs=-1", f"trainer.max_steps={self.steps or -1}",
                f"trainer.budget_minutes={self.minutes if self.minutes else 'null'}"]


MAX_TAG = 64  # W&B refuses longer tags; the full cell name is in the run's config


def run_name(cell: Cell, seed: int) -> str:
    return f"{cell.name}-seed{seed}"


def result_path(out: Path, cell: Cell, seed: int) -> Path:
    return Path(out) / "cells" / f"{run_name(cell, seed)}.json"


def cell_config(words: list[str], cell: Cell, seed: int, budget: Budget, out: Path,
                group: str, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The ablation file's words, the cell's values, the command line's ``overrides``, then the
    budget and seed; named, grouped and tagged for W&B."""
    cfg = load_config([*words, *cell.overrides(), *overrides, *budget.overrides(),
                       f"seed={seed}", f"data.seed={seed}"])
    cfg.run_name = run_name(cell, seed)
    cfg.resume = "auto"
    cfg.out_dir = str(Path(out) / "runs")
    cfg.logger.group = group
    cfg.logger.job_type = "ablation-cell"
    tags = {*cfg.logger.tags, "ablation", *cell.tags(), f"seed:{seed}"}
    cfg.logger.tags = sorted(t if len(t) <= MAX_TAG else t[: MAX_TAG - 1] + "…" for t in tags)
    cfg.logger.extra_config = {**cell.columns(), "ablation_seed": seed}
    return cfg


def run_cell(words: list[str], cell: Cell, seed: int, budget: Budget, out: Path, group: str,
             overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Train (or continue) and test one cell × seed and write its result file (rank 0): the
    cell's axes, test bpd, steps, training seconds, parameters and resolved model config."""
    cfg = cell_config(words, cell, seed, budget, out, group, overrides)
    history = BpdHistory()
    metrics = train(cfg, extra_callbacks=[history])
    result = {
        **cell.columns(), "seed": seed, "test_bpd": float(metrics["test/bpd"]),
        "steps": history.steps, "wall_s": round(history.seconds, 1), "params": history.params,
        "run_dir": metrics["run_dir"], "group": group, "model": to_dict(cfg)["model"],
        "budget": budget.record(),
    }
    if is_rank_zero():
        write_json(result_path(out, cell, seed), result)
    return result


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: readers see the old file or the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_result(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None
