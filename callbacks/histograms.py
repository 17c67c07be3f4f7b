"""Overlaid bits/dim histograms as a PNG (per-image test bits/dim, out-of-distribution sets)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

OVERFLOW = 4.0  # values above this multiple of the first set's largest go into the last bin


def save_histograms(path: str | Path, sets: dict[str, np.ndarray], title: str,
                    bins: int = 40) -> Path:
    """One histogram per named set of bits/dim values (each (N,)), overlaid on shared bins as the
    fraction of each set per bin. The axis spans the first set (the test split) up to
    ``OVERFLOW`` times its largest value; anything above, infinite values included (noise images
    can cost 10^30 bits/dim or overflow), is counted in the last bin, and the legend gives each
    set's median and its share there. Returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = {name: v[~np.isnan(v)] for name, v in sets.items()}
    cap, low = _cap(kept), _low(kept)
    edges = np.linspace(min(low, cap - 1), cap, bins + 1)
    fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=110)
    for name, values in kept.items():
        share = float(np.mean(values >= cap)) if values.size else 0.0
        ax.hist(np.clip(values, edges[0], cap * (1 - 1e-9)), bins=edges, alpha=0.5,
                weights=np.full(values.size, 1 / max(1, values.size)),
                label=(f"{name} (n={values.size}, median {np.median(values):.4g}, "
                       f"{share:.0%} at ≥ {cap:.3g})") if values.size else f"{name} (n=0)")
    ax.set_xlabel(f"bits/dim (the last bin holds everything ≥ {cap:.3g})")
    ax.set_ylabel("fraction of the set")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _low(sets: dict[str, np.ndarray]) -> float:
    """The axis' lower end: the smallest finite value of all sets (0 without any)."""
    finite = [float(v[np.isfinite(v)].min()) for v in sets.values() if np.isfinite(v).any()]
    return min(finite) if finite else 0.0


def _cap(sets: dict[str, np.ndarray]) -> float:
    """The axis' upper end: ``OVERFLOW`` × the first set's largest finite value, or the largest
    finite value of all sets when that is smaller."""
    finite = [v[np.isfinite(v)] for v in sets.values()]
    pooled = np.concatenate([v for v in finite if v.size] or [np.ones(1)])
    first = finite[0] if finite and finite[0].size else pooled
    return float(min(pooled.max(), OVERFLOW * first.max())) + 1e-9
