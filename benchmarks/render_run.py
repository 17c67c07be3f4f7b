"""Render what a run's W&B media slider steps through, from the run's own files.

    python -m benchmarks.render_run runs/<run> [--out docs/wandb_run.png] [--frames 4]

One panel per logged step of ``samples/temperatures`` (rows: temperatures 0 … 1, the same noise
at every step), spread over the run, then the last validation's bits-per-level chart and the
summary numbers from ``summary.json``. Only the run directory is read: the PNGs the callbacks
wrote beside what they logged to W&B.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def frames(run: Path, count: int) -> list[Path]:
    """Up to ``count`` sample-grid files spread over the run, first and last included."""
    grids = sorted((run / "media" / "samples").glob("step*_temperatures.png"))
    if len(grids) <= count:
        return grids
    picks = {round(i * (len(grids) - 1) / (count - 1)) for i in range(count)}
    return [grids[i] for i in sorted(picks)]


def render(run: Path, out: Path, count: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    grids = frames(run, count)
    levels = sorted((run / "media" / "levels").glob("val_step*.png"))
    summary = json.loads((run / "summary.json").read_text())
    fig, axes = plt.subplots(1, len(grids) + 1, figsize=(3.1 * (len(grids) + 1.6), 3.6),
                             dpi=130, gridspec_kw={"width_ratios": [1] * len(grids) + [1.6]})
    for ax, path in zip(axes, grids, strict=False):
        ax.imshow(Image.open(path), cmap="gray")
        step = int(path.name.removeprefix("step").split("_")[0])
        ax.set_title(f"samples/temperatures\nstep {step:,}", fontsize=8)
        ax.axis("off")
    ax = axes[-1]
    if levels:
        ax.imshow(Image.open(levels[-1]))
    ax.axis("off")
    lines = [f"val/bpd best {summary.get('val/bpd_best', float('nan')):.4f} "
             f"(step {summary.get('val/bpd_best_step', '?')})",
             f"test/bpd {summary.get('test/bpd', float('nan')):.4f} on "
             f"{summary.get('num_images', '?')} images, {summary.get('steps', '?')} steps"]
    ax.set_title("\n".join(lines), fontsize=8)
    fig.suptitle(f"{run.name}: the media slider's frames (rows T = 0, 0.5, 0.7, 0.8, 0.9, 1) "
                 "and where the bits go", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/wandb_run.png"))
    p.add_argument("--frames", type=int, default=4)
    args = p.parse_args()
    print(f"wrote {render(args.run, args.out, args.frames)}")


if __name__ == "__main__":
    main()
