"""Tables of an ablation: ``results.csv`` (one row per cell × seed, with its resolved model
config) and ``results.md`` (per cell: mean test bits/dim with a 95% interval over seeds; the
ordering claims judged on paired differences; the late ranking of cells; the cells' configs)."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

from glow_lightning.ablation.stats import Verdict, mean_ci, order_changes, paired, tied
from glow_lightning.checks import flatten

COLUMNS = ("cell", "seed", "architecture", "coupling", "permutation", "test_bpd", "steps",
           "wall_s", "params")
SUMMARY_COLUMNS = ("cell", "architecture", "coupling", "permutation", "test_bpd_mean",
                   "test_bpd_ci95", "test_bpd_std", "seeds", "steps", "wall_s", "params")
VERDICT_COLUMNS = ("claim", "mean_difference", "ci95", "seeds", "verdict")


def axis_columns(rows: list[dict[str, Any]]) -> list[str]:
    """Columns beyond the fixed ones that rows carry (extra ablation axes such as scale_fn)."""
    fixed = {*COLUMNS, "run_dir", "group", "model"}
    return sorted({k for r in rows for k in r if k not in fixed})


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns = [*COLUMNS, *axis_columns(rows), "model"]
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "model": json.dumps(r.get("model", {}), sort_keys=True)}
                         for r in rows)
    return Path(path)


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per cell (first-seen order): mean, 95% interval half-width and sample std of
    test bpd over seeds, mean steps and wall seconds, parameters.

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
        mean, half = mean_ci(bpd)
        first = group[0]
        out.append({
            **{k: first[k] for k in ("architecture", "coupling", "permutation")},
            **{k: first[k] for k in axis_columns(group)},
            "cell": name, "test_bpd_mean": mean, "test_bpd_ci95": half,
            "test_bpd_std": _std(bpd), "seeds": len(group),
            "steps": round(statistics.fmean(int(r["steps"]) for r in group)),
            "wall_s": statistics.fmean(float(r["wall_s"]) for r in group),
            "params": int(first["params"]),
        })
    return out


def seed_scores(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """Test bits/dim by cell, then seed."""
    scores: dict[str, dict[int, float]] = {}
    for r in rows:
        scores.setdefault(r["cell"], {})[int(r["seed"])] = float(r["test_bpd"])
    return scores


def verdicts(rows: list[dict[str, Any]], claims: list[tuple[str, str, str]]) -> list[Verdict]:
    """Every claim (label, lower cell, higher cell) judged on the rows' same-seed pairs."""
    scores = seed_scores(rows)
    found = (paired(scores, lower, higher, label) for label, lower, higher in claims)
    return [v for v in found if v is not None]


def _interval(mean: float, half: float, digits: int = 3) -> str:
    if math.isnan(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def markdown_table(summary: list[dict[str, Any]]) -> str:
    """A GitHub table: cell, coupling, permutation, test bpd mean ± 95% interval (std), seeds,
    steps, wall s, parameters."""
    lines = ["| cell | coupling | permutation | test bpd (mean ± 95% CI) | std | seeds | steps "
             "| wall s / run | parameters |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['cell']} | {s['coupling']} | {s['permutation']} | "
                     f"{_interval(s['test_bpd_mean'], s['test_bpd_ci95'])} | "
                     f"{s['test_bpd_std']:.3f} | {s['seeds']} | {s['steps']} | "
                     f"{s['wall_s']:.0f} | {s['params']:,} |")
    return "\n".join(lines) + "\n"


def verdict_table(found: list[Verdict]) -> str:
    lines = ["| claim | paired difference lower − higher (mean ± 95% CI) | seeds | verdict |",
             "|---|---|---|---|"]
    lines += [f"| {v.label} | {_interval(v.mean, v.half_width, 4)} | {v.seeds} | "
              f"**{v.outcome}** |" for v in found]
    return "\n".join(lines) + "\n"


def verdict_rows(found: list[Verdict]) -> list[dict[str, Any]]:
    return [dict(claim=v.label, mean_difference=v.mean, ci95=v.half_width, seeds=v.seeds,
                 verdict=v.outcome) for v in found]


def ranking_table(rankings: list[tuple[int, list[str]]], rows: list[dict[str, Any]]) -> str:
    """The late rankings and whether they settled: a swap between cells the seeds cannot tell
    apart (:func:`~glow_lightning.ablation.stats.tied`) does not unsettle the ranking."""
    lines = ["| step | cells, lowest smoothed train bits/dim first |", "|---|---|"]
    lines += [f"| {step} | {' < '.join(order)} |" for step, order in rankings]
    changes = order_changes(rankings)
    scores = seed_scores(rows)
    apart = [(a, b) for a, b in changes if not tied(scores, a, b)]
    pairs = "; ".join(f"{a} / {b}" for a, b in (apart or changes))
    if not changes:
        verdict = "the ranking does not change over the last quarter"
    elif not apart:
        verdict = ("the order changes only between cells the seeds cannot tell apart (paired "
                   f"test-bpd difference inconclusive): {pairs}; every other pair keeps its "
                   "order over the last quarter")
    else:
        verdict = ("the order still changes between cells the seeds tell apart: "
                   f"{pairs}; a longer budget is needed before that order means much")
    return "\n".join(lines) + f"\n\nLate ranking: {verdict}.\n"


def config_section(rows: list[dict[str, Any]]) -> str:
    """The resolved model config: the keys common to every cell once, then each cell's own."""
    models = {r["cell"]: flatten(r.get("model", {}), "model.") for r in rows}
    if not models:
        return ""
    keys = set.intersection(*(set(m) for m in models.values()))
    common = {k: v for k, v in next(iter(models.values())).items()
              if k in keys and all(m.get(k) == v for m in models.values())}
    lines = ["Model config common to every cell: " +
             ", ".join(f"`{k}={v}`" for k, v in sorted(common.items())), ""]
    for cell, model in models.items():
        own = {k: v for k, v in model.items() if k not in common}
        lines.append(f"- `{cell}`: " + ", ".join(f"`{k}={v}`" for k, v in sorted(own.items())))
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, title: str, notes: str, sections: list[tuple[str, str]]) -> Path:
    """``# title``, the notes, then ``## heading`` + body for every section."""
    body = "\n".join(f"## {heading}\n\n{text}" for heading, text in sections if text)
    Path(path).write_text(f"# {title}\n\n{notes.strip()}\n\n{body}")
    return Path(path)
