"""One extra W&B run per ablation group holding the results as ``wandb.Table``s and the plot."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from glow_lightning.ablation.report import COLUMNS, SUMMARY_COLUMNS, VERDICT_COLUMNS

MARKER = "wandb_summary.sha1"


def inside_sweep() -> bool:
    """True under ``wandb agent``: the run id is the agent's, so no second run may start."""
    return bool(os.environ.get("WANDB_SWEEP_ID") or os.environ.get("WANDB_RUN_ID"))


def _table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Any:
    import wandb

    return wandb.Table(columns=list(columns), data=[[r[c] for c in columns] for r in rows])


def log_summary_run(out: Path, project: str, group: str, mode: str, rows: list[dict[str, Any]],
                    summary: list[dict[str, Any]], claims: list[dict[str, Any]],
                    plot: Path) -> bool:
    """Log ``ablation/results`` (cell × seed), ``ablation/summary`` (per cell, with 95%
    intervals), ``ablation/claims`` (the judged orderings) and the plot in a run named
    ``<group>-summary`` of the group. Skipped when the same results were logged
    before (``<out>/wandb_summary.sha1``) or inside a sweep. Returns True when it logged."""
    digest = hashlib.sha1((Path(out) / "results.csv").read_bytes()).hexdigest()
    marker = Path(out) / MARKER
    if inside_sweep() or (marker.is_file() and marker.read_text().strip() == digest):
        return False
    import wandb

    run = wandb.init(project=project, group=group, name=f"{group}-summary",
                     mode=mode,  # type: ignore[arg-type]  # "online" | "offline" | "disabled"
                     job_type="ablation-summary", dir=str(out), tags=["ablation", "summary"],
                     config={"cells": [s["cell"] for s in summary], "runs": len(rows)})
    try:
        run.log({"ablation/results": _table(COLUMNS, rows),
                 "ablation/summary": _table(SUMMARY_COLUMNS, summary),
                 "ablation/claims": _table(VERDICT_COLUMNS, claims),
                 "ablation/bpd_vs_step": wandb.Image(str(plot))})
        for s in summary:
            run.summary[f"test_bpd/{s['cell']}"] = s["test_bpd_mean"]
    finally:
        run.finish()
    marker.write_text(digest + "\n")
    return True
