"""Statistics for ablation verdicts: means with 95% intervals over seeds, paired (same-seed)
differences for ordering claims, and whether the ranking of cells still moves late in training.

A claim ``a < b`` ("cell a reaches lower test bits/dim than cell b") is judged on the paired
differences ``d_s = bpd_a(s) − bpd_b(s)`` over the seeds both finished: it **holds** when the
whole 95% interval of the mean difference lies below 0, **does not hold** when it lies above 0,
and is **inconclusive** at this budget otherwise (or with fewer than two seeds).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# two-sided 95% quantiles of Student's t, by degrees of freedom
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t95(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees of freedom.

    >>> t95(2), t95(1000) < 1.97
    (4.303, True)
    """
    if df < 1:
        raise ValueError("a t interval needs at least 2 values")
    return _T95[df - 1] if df <= len(_T95) else 1.96 + 2.4 / df


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """(mean, half-width of its 95% interval); the half-width is NaN for one value.

    >>> m, h = mean_ci([1.0, 2.0, 3.0]); (m, round(h, 3))
    (2.0, 2.484)
    """
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


@dataclass(frozen=True)
class Verdict:
    """One ordering claim judged on paired differences (see the module docstring)."""

    label: str
    lower: str
    higher: str
    mean: float
    half_width: float
    seeds: int

    @property
    def outcome(self) -> str:
        if self.seeds < 2 or math.isnan(self.half_width):
            return "inconclusive"
        if self.mean + self.half_width < 0:
            return "holds"
        if self.mean - self.half_width > 0:
            return "does not hold"
        return "inconclusive"


def paired(scores: dict[str, dict[int, float]], lower: str, higher: str,
           label: str = "") -> Verdict | None:
    """The claim ``lower < higher`` on same-seed pairs; None when a cell is missing."""
    if lower not in scores or higher not in scores:
        return None
    seeds = sorted(scores[lower].keys() & scores[higher].keys())
    if not seeds:
        return None
    diffs = [scores[lower][s] - scores[higher][s] for s in seeds]
    mean, half = mean_ci(diffs)
    return Verdict(label or f"{lower} < {higher}", lower, higher, mean, half, len(seeds))


def figure3_claims(cells: Sequence[str]) -> list[tuple[str, str, str]]:
    """The Glow paper's orderings (Kingma & Dhariwal 2018, Fig. 3) among ``cells``:
    1×1 conv < shuffle < reverse for each coupling, affine < additive for each permutation, and
    Glow (affine, 1×1 conv) < RealNVP; as (label, lower, higher)."""
    claims = []
    for c in ("additive", "affine"):
        claims += [(f"{c}: 1x1 conv < shuffle", f"{c}-invconv", f"{c}-shuffle"),
                   (f"{c}: shuffle < reverse", f"{c}-shuffle", f"{c}-reverse")]
    claims += [(f"{p}: affine < additive", f"affine-{p}", f"additive-{p}")
               for p in ("reverse", "shuffle", "invconv")]
    claims.append(("Glow (affine, 1x1 conv) < RealNVP", "affine-invconv", "realnvp"))
    return [c for c in claims if c[1] in cells and c[2] in cells]


def mean_curve_at(histories: list[list[tuple[int, float]]], steps: Sequence[int],
                  window: int) -> list[float]:
    """The seeds' mean training curve, trailing ``window``-step averages, at ``steps``."""
    means = []
    tables = [dict(h) for h in histories]
    for step in steps:
        windows = [[t[s] for s in range(step - window + 1, step + 1) if s in t] for t in tables]
        means.append(float(np.mean([np.mean(w) for w in windows if w])))
    return means


def late_rankings(curves: dict[str, list[list[tuple[int, float]]]], last_step: int,
                  points: int = 5) -> list[tuple[int, list[str]]]:
    """The cells ordered by their smoothed mean training bits/dim (best first) at ``points``
    steps spread over the last quarter of training (its start to its end)."""
    window = max(25, last_step // 20)
    steps = [round(last_step * (0.75 + 0.25 * i / (points - 1))) for i in range(points)]
    values = {cell: mean_curve_at(h, steps, window) for cell, h in curves.items() if h}
    out = []
    for i, step in enumerate(steps):
        at = {cell: v[i] for cell, v in values.items()}
        out.append((step, sorted(at, key=at.__getitem__)))
    return out


def order_changes(rankings: list[tuple[int, list[str]]]) -> list[tuple[str, str]]:
    """The pairs of cells whose relative order differs between two of ``rankings``.

    >>> order_changes([(1, ["a", "b", "c"]), (2, ["b", "a", "c"])])
    [('a', 'b')]
    """
    orders = [{cell: i for i, cell in enumerate(order)} for _, order in rankings]
    cells = sorted(orders[0]) if orders else []
    return [(a, b) for i, a in enumerate(cells) for b in cells[i + 1:]
            if len({o[a] < o[b] for o in orders if a in o and b in o}) > 1]


def tied(scores: dict[str, dict[int, float]], a: str, b: str) -> bool:
    """Whether the seeds cannot tell ``a`` and ``b`` apart (their paired test-bpd difference
    is inconclusive)."""
    found = paired(scores, a, b)
    return found is None or found.outcome == "inconclusive"
