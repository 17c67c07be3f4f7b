"""Overlaid bits/dim histograms as a PNG (per-image test bits/dim, out-of-distribution sets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_histograms(path: str | Path, sets: dict[str, np.ndarray], title: str,
                    bins: int = 40) -> Path:
    """One histogram per named set of bits/dim values (each (N,), non-finite values left out),
    overlaid on shared bin edges as the fraction of each set per bin, on a log axis where the values
    span more than two decades (noise images can cost 10^20 bits/dim); returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = {name: v[np.isfinite(v)] for name, v in sets.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size] or [np.zeros(1)])
    low, high = float(pooled.min()), float(pooled.max())
    log_axis = low > 0 and high / low > 100
    edges = np.geomspace(low, high, bins + 1) if log_axis else np.histogram_bin_edges(pooled, bins)
    fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=110)
    if log_axis:
        ax.set_xscale("log")
    for name, values in finite.items():
        ax.hist(values, bins=edges, weights=np.full(values.size, 1 / max(1, values.size)),
                alpha=0.5,
                label=f"{name} (n={values.size}, mean {values.mean():.4g})" if values.size
                else f"{name} (n=0)")
    ax.set_xlabel("bits/dim")
    ax.set_ylabel("fraction of the set")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
