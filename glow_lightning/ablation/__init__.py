"""Ablation grids (Glow Figure 3 plus RealNVP): cells, per-cell runs, tables, plot, W&B sweep."""

from glow_lightning.ablation.cell import Budget, result_path, run_cell
from glow_lightning.ablation.grid import Cell, build_grid, select
from glow_lightning.ablation.runner import (
    Ablation,
    collect,
    run_grid,
    write_reports,
    write_sweep_file,
    write_train_sweep_files,
)
from glow_lightning.ablation.spec import AblationSpec, load_spec
from glow_lightning.ablation.sweep import sweep_config, write_sweep

__all__ = [
    "Ablation", "AblationSpec", "Budget", "Cell", "build_grid", "collect",
    "load_spec", "result_path", "run_cell", "run_grid", "select", "sweep_config",
    "write_reports", "write_sweep", "write_sweep_file", "write_train_sweep_files",
]
