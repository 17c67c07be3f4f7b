"""Render the README's two pictures of one run, from that run's directory only.

    python -m benchmarks.render_run runs/<run> [--out docs/wandb_run.png]
        [--samples docs/samples.png] [--frames 4]

``wandb_run.png``: what the run's W&B workspace shows. Top row: one panel per logged step of
``samples/temperatures`` (rows: temperatures 0 … 1, the same noise at every step), spread over
the run, then the last validation's bits-per-level chart (``val/bits_per_level_plot``). Bottom
row: the training-health panels, read back from the offline W&B log (``wandb/offline-run-*``)
against ``trainer/global_step``: bits/dim (train per step, val), learning rate, gradient norm
before clipping, images/s. ``samples.png``: the final sample grid (the end of training), as
the callbacks wrote it. Prints the numbers the README's captions state (steps, planned steps,
test and best val bits/dim, the frames' steps), so a caption and its picture come from one run.
Rerun it whenever the default recipe changes.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

CURVES = (  # (title, [(history key, label)], log scale)
    ("bits/dim", [("train/bpd_step", "train (step)"), ("val/bpd", "val")], False),
    ("learning rate", [("train/lr", "train/lr")], False),
    ("gradient norm before clipping", [("train/grad_norm", "train/grad_norm")], True),
    ("images/s (all processes)", [("train/images_per_s_total", "train/images_per_s_total")],
     False),
)


def frames(run: Path, count: int) -> list[Path]:
    """Up to ``count`` sample-grid files spread over the run, first and last included."""
    grids = sorted((run / "media" / "samples").glob("step*_temperatures.png"))
    if len(grids) <= count:
        return grids
    picks = {round(i * (len(grids) - 1) / (count - 1)) for i in range(count)}
    return [grids[i] for i in sorted(picks)]


def step_of(path: Path) -> int:
    """``step0004200_temperatures.png`` → 4200."""
    return int(path.name.removeprefix("step").split("_")[0])


def history(run: Path) -> list[dict[str, Any]]:
    """The W&B run's history rows (the newest offline run of ``run``), [] without one."""
    from tests.wandb_reader import find_run_dirs, read_history

    found = find_run_dirs(run / "wandb")
    return read_history(found[-1]) if found else []


def _curve(ax: Any, rows: list[dict[str, Any]], title: str, keys: list, log: bool) -> None:
    for key, label in keys:
        points = [(r["trainer/global_step"], r[key]) for r in rows if key in r]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=label, linewidth=0.9, marker="o" if len(xs) < 30 else None,
                    markersize=3)
    if log:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("trainer/global_step", fontsize=7)
    ax.tick_params(labelsize=6)
    if len(keys) > 1:
        ax.legend(fontsize=6)


def caption_numbers(run: Path) -> list[str]:
    summary = json.loads((run / "summary.json").read_text())
    return [f"val/bpd best {summary.get('val/bpd_best', float('nan')):.4f} "
            f"(step {summary.get('val/bpd_best_step', '?')})",
            f"test/bpd {summary.get('test/bpd', float('nan')):.4f} on "
            f"{summary.get('num_images', '?')} images, {summary.get('steps', '?')} steps "
            f"(planned {summary.get('planned_steps', '?')})"]


def render(run: Path, out: Path, count: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    grids = frames(run, count)
    levels = sorted((run / "media" / "levels").glob("val_step*.png"))
    fig = plt.figure(figsize=(3.1 * (len(grids) + 1.6), 6.6), dpi=130, layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    axes = top.subplots(1, len(grids) + 1, width_ratios=[1] * len(grids) + [1.6])
    for ax, path in zip(axes, grids, strict=False):
        ax.imshow(Image.open(path), cmap="gray")
        ax.set_title(f"samples/temperatures\nstep {step_of(path):,}", fontsize=8)
        ax.axis("off")
    ax = axes[-1]
    if levels:
        ax.imshow(Image.open(levels[-1]))
    ax.axis("off")
    ax.set_title("\n".join(caption_numbers(run)), fontsize=8)
    rows = history(run)
    for ax, (title, keys, log) in zip(bottom.subplots(1, len(CURVES)), CURVES, strict=True):
        _curve(ax, rows, title, keys, log)
    fig.suptitle(f"{run.name}: the media slider's frames (rows T = 0, 0.5, 0.7, 0.8, 0.9, 1), "
                 "where the bits go, and the training-health panels", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def copy_samples(run: Path, out: Path) -> Path:
    """The last ``samples/temperatures`` grid (the end of training) to ``out``."""
    grids = sorted((run / "media" / "samples").glob("step*_temperatures.png"))
    if not grids:
        raise SystemExit(f"{run}: no media/samples/step*_temperatures.png (callbacks off?)")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(grids[-1], out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, default=Path("docs/wandb_run.png"))
    p.add_argument("--samples", type=Path, default=Path("docs/samples.png"))
    p.add_argument("--frames", type=int, default=4)
    args = p.parse_args()
    print(f"wrote {render(args.run, args.out, args.frames)}")
    print(f"wrote {copy_samples(args.run, args.samples)}")
    steps = [step_of(g) for g in sorted((args.run / "media" / "samples").glob(
        "step*_temperatures.png"))]
    print(f"frames: {len(steps)} at steps {steps}")
    print("\n".join(caption_numbers(args.run)))


if __name__ == "__main__":
    main()
