"""Where the bits go: each level's prior term and log-det in bits/dim, after every validation
and test, as a W&B table with a bar chart and as a PNG under ``media/levels/`` (also on W&B as
``{stage}/bits_per_level_plot``).

The values are the module's synced ``val/bits_level{i}_prior`` / ``_logdet`` metrics
(:func:`glow_lightning.ops.level_bits`); with ``bits_quantisation`` they sum to the bpd.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from .media import media_path, wandb_loggers

COLUMNS = ["level", "prior bits/dim", "log-det bits/dim", "bits/dim"]


def level_rows(metrics: dict, stage: str) -> list[list[float | str]]:
    """``[level, prior, log-det, total]`` per level from ``stage/bits_level*`` metrics, then a
    ``quantisation`` row; empty when the metrics are absent."""
    rows: list[list[float | str]] = []
    i = 0
    while f"{stage}/bits_level{i}" in metrics:
        parts = [float(metrics[f"{stage}/bits_level{i}{p}"]) for p in ("_prior", "_logdet", "")]
        rows.append([f"level {i}", *parts])
        i += 1
    if rows and f"{stage}/bits_quantisation" in metrics:
        q = float(metrics[f"{stage}/bits_quantisation"])
        rows.append(["quantisation", 0.0, 0.0, q])
    return rows


def _plot(rows: list[list[float | str]], title: str):  # -> matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2), dpi=110)
    names = [str(r[0]) for r in rows]
    ax.bar(names, [float(r[1]) for r in rows], label="prior", color="tab:blue")
    ax.bar(names, [float(r[2]) for r in rows], label="log-det", color="tab:orange")
    ax.scatter(names, [float(r[3]) for r in rows], color="black", zorder=3, label="sum")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylabel("bits/dim")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


class LevelBits(Callback):
    """Table and chart of :func:`level_rows` at every validation and at test end (rank zero)."""

    def _publish(self, trainer: L.Trainer, stage: str) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        rows = level_rows(trainer.callback_metrics, stage)
        if not rows:
            return
        total = sum(float(r[3]) for r in rows)
        title = f"{stage} bits/dim by level at step {trainer.global_step} (sum {total:.4f})"
        fig = _plot(rows, title)
        path = media_path(trainer, "levels", f"{stage}_step{trainer.global_step:07d}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        import matplotlib.pyplot as plt

        plt.close(fig)
        for logger in wandb_loggers(trainer):
            import wandb

            table = wandb.Table(columns=COLUMNS, data=rows)
            chart = wandb.plot.bar(table, "level", "bits/dim", title=title)
            # W&B shows only the newest custom chart; the stacked prior/log-det picture is an
            # image, so the media slider steps through every validation's
            logger.log_metrics({f"{stage}/bits_per_level": table,
                                f"{stage}/bits_per_level_chart": chart,
                                f"{stage}/bits_per_level_plot": wandb.Image(str(path))},
                               step=trainer.global_step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._publish(trainer, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._publish(trainer, "test")



