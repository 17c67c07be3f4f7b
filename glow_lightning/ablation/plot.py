"""The Figure 3 analogue: training bits/dim against optimiser step, one curve per cell.

Glow (Kingma & Dhariwal 2018, Fig. 3) plots bits/dim per epoch for additive and affine couplings
with reverse, shuffle and 1×1 conv permutations. Here each curve is the mean over seeds of the
per-step training bits/dim, smoothed with a trailing moving average.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STYLE = {"reverse": "tab:blue", "shuffle": "tab:orange", "invconv": "tab:green",
         "invconv_lu": "tab:olive"}


def seed_curves(histories: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Steps present in every history and the bpd of each history there, (seeds, steps)."""
    if not histories or not all(histories):
        return np.zeros(0, dtype=int), np.zeros((0, 0))
    common = sorted(set.intersection(*(set(s for s, _ in h) for h in histories)))
    tables = [dict(h) for h in histories]
    return np.array(common, dtype=int), np.array([[t[s] for s in common] for t in tables])


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter windows at the start), same length as ``values``.

    >>> smooth(np.array([1.0, 3.0, 5.0]), 2).tolist()
    [1.0, 2.0, 4.0]
    """
    if window <= 1 or values.size == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, values.size + 1)
    start = np.maximum(idx - window, 0)
    return (sums[idx] - sums[start]) / (idx - start)


def _style(cell: str) -> dict:
    if cell == "realnvp":
        return {"color": "black", "linestyle": ":"}
    coupling, _, rest = cell.partition("-")
    permutation, _, axes = rest.partition("-")
    color = STYLE.get(permutation, "tab:gray") if not axes else f"C{sum(map(ord, axes)) % 10}"
    return {"color": color, "linestyle": "--" if coupling == "additive" else "-"}


def y_limits(tails: list[np.ndarray]) -> tuple[float, float] | None:
    """The y range of the curves' finite values past their first fifth (bits/dim there are far
    above the interesting range), with a 5% margin; None when there is nothing to range over
    (no finite value: a diverged or 2-step run).

    >>> y_limits([np.array([2.0, np.nan, 3.0])])
    (1.95, 3.05)
    >>> y_limits([np.array([np.inf])]) is None
    True
    """
    finite = [t[np.isfinite(t)] for t in tails]
    values = np.concatenate(finite) if finite else np.array([])
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * (high - low) or 0.5
    return low - pad, high + pad


def plot_curves(path: Path, curves: dict[str, list[list[tuple[int, float]]]], title: str,
                window: int = 25) -> Path:
    """Write the PNG: additive dashed, affine solid, colour by permutation, RealNVP dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    tails = []
    for cell, histories in curves.items():
        steps, values = seed_curves(histories)
        if steps.size == 0:
            continue
        smoothed = np.array([smooth(v, window) for v in values])  # (seeds, steps)
        line = smoothed.mean(axis=0)
        style = _style(cell)
        ax.plot(steps, line, label=f"{cell} (n={len(histories)})", linewidth=1.4, **style)
        if len(histories) > 1:  # the band: the smoothed curves' spread over seeds (± 1 std)
            spread = smoothed.std(axis=0, ddof=1)
            ax.fill_between(steps, line - spread, line + spread, alpha=0.15, linewidth=0,
                            color=style["color"])
        tails.append(line[steps.size // 5 :])
    limits = y_limits(tails)
    if limits:
        ax.set_ylim(*limits)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("train bits/dim")
    ax.set_title(f"{title}\n(mean over seeds ± 1 std band, trailing {window}-step average)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
