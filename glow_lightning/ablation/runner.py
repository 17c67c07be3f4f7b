"""Run an ablation grid in sequence, resumably, and write its table, plot and sweep file.

Output folder ``out``::

    sweep.yaml               the same grid as a W&B sweep
    cells/<cell>-seed<s>.json  one result per finished cell × seed (presence = done)
    runs/<cell>-seed<s>/     the run directories (checkpoints, bpd_history.csv, W&B run)
    results.csv, results.md, bpd_vs_step.png   rewritten after every cell
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glow_lightning.ablation.cell import Budget, read_result, result_path, run_cell
from glow_lightning.ablation.grid import Cell
from glow_lightning.ablation.history import HISTORY_FILE, read_history
from glow_lightning.ablation.plot import plot_curves
from glow_lightning.ablation.report import (
    config_section,
    markdown_table,
    ranking_table,
    summarise,
    verdict_rows,
    verdict_table,
    verdicts,
    write_csv,
    write_markdown,
)
from glow_lightning.ablation.stats import Verdict, figure3_claims, late_rankings
from glow_lightning.ablation.sweep import write_sweep, write_train_sweeps
from glow_lightning.ablation.wandb_summary import inside_sweep, log_summary_run
from glow_lightning.config import load_config
from glow_lightning.errors import ConfigError
from glow_lightning.train.launch import is_rank_zero
from glow_lightning.train.wandb_run import wandb_mode


@dataclass
class Ablation:
    """Everything the runner needs: config words shared by all cells, the grid, the budget."""

    name: str
    words: list[str]  # the ablation file's words for every cell (experiment=, model.*, ...)
    cells: list[Cell]
    seeds: list[int]
    budget: Budget
    out: Path
    group: str
    sweep_words: list[str]  # what a sweep run passes to `glow-lightning ablate` besides cell/seed
    overrides: list[str] = field(default_factory=list)  # the command line's, after each cell's
    claims: list[tuple[str, str, str]] | None = None  # (label, lower, higher); None: Figure 3

    def jobs(self) -> list[tuple[Cell, int]]:
        return [(cell, seed) for cell in self.cells for seed in self.seeds]

    def is_done(self, cell: Cell, seed: int) -> bool:
        """Whether the cell × seed has a result; ConfigError when that result was trained with
        another budget (one table never mixes budgets)."""
        path = result_path(self.out, cell, seed)
        found = read_result(path)
        if found is None:
            return False
        had = found.get("budget")
        if had is not None and had != self.budget.record():
            raise ConfigError(f"'{path}' was trained with budget {had} but this run asks for "
                              f"{self.budget.record()}; choose another out= for the new budget, "
                              "or give the same budget_steps= / budget_minutes=")
        return True


def collect(ab: Ablation) -> list[dict[str, Any]]:
    """The finished results, in grid order."""
    found = (read_result(result_path(ab.out, c, s)) for c, s in ab.jobs())
    return [r for r in found if r is not None]


@dataclass
class Report:
    """What an ablation's results say: per-cell summary, judged claims, late ranking."""

    summary: list[dict[str, Any]]
    verdicts: list[Verdict]
    rankings: list[tuple[int, list[str]]]


def write_reports(ab: Ablation, rows: list[dict[str, Any]]) -> Report:
    """results.csv, results.md and bpd_vs_step.png from the finished rows."""
    curves: dict[str, list] = {}
    for row in rows:
        history = read_history(Path(row["run_dir"]) / HISTORY_FILE)
        if history:
            curves.setdefault(row["cell"], []).append(history)
    claims = ab.claims if ab.claims is not None else figure3_claims([c.name for c in ab.cells])
    last = min((h[-1][0] for hs in curves.values() for h in hs), default=0)
    report = Report(summarise(rows), verdicts(rows, claims),
                    late_rankings(curves, last) if last >= 8 else [])
    write_csv(ab.out / "results.csv", rows)
    budget = (f"{ab.budget.steps or 'no'} steps" +
              (f", at most {ab.budget.minutes:g} min" if ab.budget.minutes else ""))
    notes = (f"Group `{ab.group}`; per-cell budget: {budget}; seeds {ab.seeds}; "
             f"{len(rows)}/{len(ab.jobs())} runs finished. Intervals are 95% t-intervals over "
             "seeds; claims are judged on same-seed differences: *holds* when the interval lies "
             "below 0, *does not hold* when above, *inconclusive* otherwise.")
    write_markdown(ab.out / "results.md", f"Ablation {ab.name}", notes, [
        ("Test bits/dim per cell", markdown_table(report.summary)),
        ("Claims", verdict_table(report.verdicts) if report.verdicts else ""),
        ("Ranking over the last quarter of training",
         ranking_table(report.rankings, rows) if report.rankings else ""),
        ("Cells", config_section(rows))])
    plot_curves(ab.out / "bpd_vs_step.png", curves, f"{ab.name}: train bits/dim vs step")
    return report


def write_sweep_file(ab: Ablation) -> Path:
    """``<out>/sweep.yaml``: the same cells and seeds as a W&B grid sweep."""
    project = load_config([*ab.words, *ab.overrides]).logger.project
    return write_sweep(ab.out / "sweep.yaml", ab.cells, ab.seeds, ab.sweep_words, ab.group,
                       project)


def write_train_sweep_files(ab: Ablation) -> list[Path]:
    """``<out>/sweep_train_<block>.yaml``: the grid as sweeps of ``glow-lightning train`` runs
    (see :mod:`glow_lightning.ablation.sweep`), grouped, tagged and typed like the cells."""
    project = load_config([*ab.words, *ab.overrides]).logger.project
    tail = [*ab.overrides, *ab.budget.overrides(), f"out_dir={ab.out / 'sweep-runs'}",
            f"logger.group={ab.group}", "logger.job_type=ablation-cell", "logger.tags=[ablation]"]
    return write_train_sweeps(ab.out, ab.cells, ab.seeds, (ab.words, tail), ab.group, project)


def run_grid(ab: Ablation, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run every unfinished cell × seed, then write the reports (and the W&B summary run once
    the grid is complete). Returns the result rows."""
    base = load_config([*ab.words, *ab.overrides])
    lead = is_rank_zero()  # under DDP every rank runs this loop; only rank 0 writes and talks
    log = log if lead else (lambda _: None)
    if lead and not inside_sweep():  # a sweep run covers one cell: keep the full grid's file
        write_sweep_file(ab)
    jobs = ab.jobs()
    for cell, seed in jobs:  # a result of another budget stops the grid before any training
        ab.is_done(cell, seed)
    for i, (cell, seed) in enumerate(jobs, 1):
        tag = f"[{i}/{len(jobs)}] {cell.name} seed {seed}"
        if ab.is_done(cell, seed):
            log(f"{tag}: done before, skipped")
            continue
        log(f"{tag}: training")
        r = run_cell(ab.words, cell, seed, ab.budget, ab.out, ab.group, ab.overrides)
        log(f"{tag}: test bpd {r['test_bpd']:.4f} ({r['steps']} steps, {r['wall_s']:.0f} s)")
        if lead:
            write_reports(ab, collect(ab))
    rows = collect(ab)
    if rows and lead:
        report = write_reports(ab, rows)
        complete = len(rows) == len(jobs)
        if complete and base.logger.kind == "wandb":
            log_summary_run(ab.out, base.logger.project, ab.group, wandb_mode(base), rows,
                            report.summary, verdict_rows(report.verdicts),
                            ab.out / "bpd_vs_step.png")
    return rows
