"""Tables of an ablation: ``results.csv`` (one row per cell × seed) and ``results.md``
(mean ± std of test bits/dim per cell across seeds)."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

COLUMNS = ("cell", "seed", "coupling", "permutation", "architecture", "test_bpd", "steps",
           "wall_s", "params")
SUMMARY_COLUMNS = ("cell", "coupling", "permutation", "architecture", "test_bpd_mean",
                   "test_bpd_std", "seeds", "steps", "wall_s", "params")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per cell (first-seen order): mean and sample std of test bpd over seeds, mean
    steps and wall seconds, parameters.

    >>> r = [dict(cell="a", coupling="affine", permutation="reverse", architecture="glow",
    ...           test_bpd=b, steps=10, wall_s=2.0, params=5) for b in (3.0, 4.0)]
    >>> s = summarise(r)[0]; (s["test_bpd_mean"], round(s["test_bpd_std"], 4), s["seeds"])
    (3.5, 0.7071, 2)
    """
    cells: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault(row["cell"], []).append(row)
    out = []
    for name, group in cells.items():
        bpd = [float(r["test_bpd"]) for r in group]
        first = group[0]
        out.append({
            "cell": name, "coupling": first["coupling"], "permutation": first["permutation"],
            "architecture": first["architecture"], "test_bpd_mean": statistics.fmean(bpd),
            "test_bpd_std": _std(bpd), "seeds": len(group),
            "steps": round(statistics.fmean(int(r["steps"]) for r in group)),
            "wall_s": statistics.fmean(float(r["wall_s"]) for r in group),
            "params": int(first["params"]),
        })
    return out


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """A GitHub table: cell, coupling, permutation, test bpd mean ± std, seeds, steps, wall s,
    parameters."""
    lines = ["| cell | coupling | permutation | test bpd (mean ± std) | seeds | steps | "
             "wall s / run | parameters |", "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['cell']} | {s['coupling']} | {s['permutation']} | "
                     f"{s['test_bpd_mean']:.3f} ± {s['test_bpd_std']:.3f} | {s['seeds']} | "
                     f"{s['steps']} | {s['wall_s']:.0f} | {s['params']:,} |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, summary: list[dict[str, Any]], title: str, notes: str) -> Path:
    text = f"# {title}\n\n{notes.strip()}\n\n{markdown_table(summary)}"
    Path(path).write_text(text)
    return Path(path)
