"""``glow-lightning test ckpt=PATH [iw_samples=K] [out=DIR] [ood=NAME|PATH,...] [overrides]``:
test bits/dim of a checkpoint, with where the bits go (each level's prior term and log-det),
the importance-weighted bound ``test/bpd_iw{K}`` (K > 1 noise draws per image), every test
image's bits/dim (``per_image.csv``, a histogram) and an out-of-distribution check
(:mod:`glow_lightning.commands.ood_check`), all written under ``out`` (default: the checkpoint's
run directory's ``test/``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from glow_lightning.commands.args import need_ckpt, parse_number, split_keys
from glow_lightning.errors import CheckpointRefused, ConfigError

HELP = ("test bits/dim of a checkpoint: ckpt=PATH [iw_samples=K] [out=DIR] "
        "[ood=NAME|PATH,...] [ood_samples=N] [data overrides]")
OWN = {"ckpt", "iw_samples", "out", "ood", "ood_samples"}


def default_out(ckpt: str) -> Path:
    """``<run dir>/test/`` for ``<run dir>/checkpoints/x.ckpt``, else ``test/`` beside it."""
    folder = Path(ckpt).resolve().parent
    return (folder.parent if folder.name == "checkpoints" else folder) / "test"


def run_test(module: Any, datamodule: Any, out: Path | None, callbacks: list[Any],
             accelerator: str = "auto") -> dict[str, float]:
    """``trainer.test`` in one process; files of the callbacks go under ``out``."""
    import lightning as L

    trainer = L.Trainer(accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=False, use_distributed_sampler=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=str(out) if out else None, callbacks=callbacks)
    results = trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def evaluate_checkpoint(ckpt: str, overrides: list[str], iw_samples: int = 0,
                        out: Path | None = None, ood: Sequence[str] = (),
                        ood_samples: int = 100) -> dict[str, Any]:
    """The ``test/*`` metrics of a checkpoint on its dataset's test split (one process):
    ``test/bpd``, the per-level terms, ``test/bpd_iw{K}`` (+ ``_sem``) with ``iw_samples`` K;
    with ``out``, ``per_image.csv``, its histogram and these metrics (``test.json``) there, and
    for ``ood`` sets ``ood.json`` and ``ood_histograms.png`` (their rows under ``"ood"``)."""
    from glow_lightning.callbacks import PerImageBits
    from glow_lightning.commands.checkpoint import experiment_of, load_module
    from glow_lightning.commands.ood_check import ood_overrides
    from glow_lightning.train.final_eval import split_under_test
    from glow_lightning.train.run import build_datamodule

    ood_words = {target: ood_overrides(target) for target in ood}  # checked before any work
    module = load_module(ckpt)
    cfg = experiment_of(module, overrides)
    datamodule = build_datamodule(cfg)
    module.iw_samples = iw_samples
    module.test_info = {"test/checkpoint": str(ckpt), "test/split": split_under_test(datamodule)}
    per_image = PerImageBits(publish=out is not None)
    metrics: dict[str, Any] = run_test(module, datamodule, out, [per_image],
                                       cfg.trainer.accelerator)
    metrics.update(module.test_info, **{"test/num_images": len(per_image.rows["bpd"])})
    if ood_words:
        metrics["ood"] = check_ood(module, overrides, ood_words, per_image.rows["bpd"],
                                   out or default_out(ckpt), ood_samples)
    if out:
        (out / "test.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def check_ood(module: Any, overrides: list[str], targets: dict[str, list[str]], test_bpd: Any,
              out: Path, n_samples: int) -> list[dict[str, Any]]:
    """Rows of :func:`~glow_lightning.commands.ood_check.ood_row` for every target (name or
    path → the overrides that read it) and for the model's samples, written to ``out``
    (``ood.json``, ``ood_histograms.png``)."""
    from glow_lightning.callbacks import PerImageBits
    from glow_lightning.commands.checkpoint import experiment_of
    from glow_lightning.commands.ood_check import (
        SAMPLE_TEMPERATURES,
        matched_datamodule,
        ood_row,
        sample_bpd,
        write_report,
    )

    module.iw_samples = 0  # the single-draw bits/dim of every set, as for the test split
    sets = {"test": test_bpd}
    for target, extra in targets.items():
        cfg = experiment_of(module, [*overrides, *extra], fixed=("model",))  # other data
        collect = PerImageBits(publish=False)
        run_test(module, matched_datamodule(cfg, module.flow.image_shape), None, [collect],
                 cfg.trainer.accelerator)
        sets[target] = collect.rows["bpd"]
    for t in SAMPLE_TEMPERATURES:
        sets[f"samples T={t}"] = sample_bpd(module, n_samples, t)
    rows = [ood_row(name, bpd, test_bpd) for name, bpd in sets.items()]
    write_report(out, sets, rows)
    return rows


def main(words: Sequence[str]) -> int:
    mine, rest = split_keys(words, OWN, strict=True)
    ckpt = need_ckpt(mine)
    out = Path(mine["out"]) if mine.get("out") else default_out(ckpt)
    ood = [t for t in mine.get("ood", "").split(",") if t]
    iw_samples = parse_number("iw_samples", mine.get("iw_samples", "0"))
    if iw_samples < 0:
        raise ConfigError(f"iw_samples={iw_samples} must be >= 1 (noise draws per test image; "
                          "0 or absent: no importance-weighted bound)")
    n_samples = parse_number("ood_samples", mine.get("ood_samples", "100"))
    metrics = evaluate_checkpoint(ckpt, rest, iw_samples, out, ood, n_samples)
    print_metrics(metrics)
    if not math.isfinite(metrics["test/bpd"]):  # a number that is no result must not exit 0
        raise CheckpointRefused(f"checkpoint '{ckpt}' evaluates to test/bpd={metrics['test/bpd']}: "
                                "its weights are not usable; test an earlier checkpoint (the one "
                                "a training's 'last good checkpoint' names, or best.ckpt)")
    print(f"wrote {out}")
    return 0


def print_metrics(metrics: dict[str, Any]) -> None:
    print(f"test/bpd = {metrics['test/bpd']:.4f}")
    if "test/bpd_worst" in metrics:
        print(f"  worst image: {metrics['test/bpd_worst']:.4f} bits/dim")
    levels = sorted(k for k in metrics if k.startswith("test/bits_level") and k.count("_") == 1)
    for key in levels:  # where the bits go: prior term + log-det of each level
        i = key.removeprefix("test/bits_level")
        print(f"  level {i}: {metrics[key]:+.4f} bits/dim = prior "
              f"{metrics[key + '_prior']:+.4f} + log-det {metrics[key + '_logdet']:+.4f}")
    if "test/bits_quantisation" in metrics:
        print(f"  quantisation: {metrics['test/bits_quantisation']:+.4f} bits/dim")
    for key in sorted(k for k in metrics if k.startswith("test/bpd_iw") and "sem" not in k):
        print(f"{key} = {metrics[key]:.4f} ± {metrics[key + '_sem']:.4f} (standard error)")
    for row in metrics.get("ood", []):
        print(f"ood {row['name']}: {row['num_images']} images, mean {row['bpd_mean']:.4f} "
              f"bits/dim, AUROC {row['auroc']:.3f}")
