"""The final test, once, on a stated checkpoint (``test`` config section).

* Validation on the test split (``data.val_size=0``, the papers' per-epoch test curves): its
  metrics are logged as ``test_monitor/*``, never ``val/*``, no ``best.ckpt`` is kept (nothing
  may be chosen by a test-split number) and ``test.checkpoint=best`` is refused.
* ``test.checkpoint``: ``last`` tests the final weights, ``best`` loads ``best.ckpt`` (the
  lowest held-out ``val/bpd``) weights-only first. The run summary records ``test/checkpoint``,
  ``test/checkpoint_step``, ``test/split`` and ``test/num_images``.
* ``test.iw_samples`` > 1 adds the importance-weighted bound ``test/bpd_iw{K}`` (Flow++);
  ``test.per_image`` writes every test image's bits/dim (:class:`PerImageBits`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from glow_lightning.config import BEST_ON_TEST, ExperimentConfig
from glow_lightning.errors import ConfigError
from glow_lightning.train.module import GlowModule
from glow_lightning.train.safe_load import load_checkpoint

MONITOR = "test_monitor"  # what validation on the test split logs as


def val_is_test(cfg: ExperimentConfig, datamodule: Any) -> bool:
    """Whether the validation loader serves the test split (the data module says so when it
    can; else ``data.val_size=0``, and streams, which validate on the test stream)."""
    fallback = cfg.data.val_size == 0 or cfg.data.streaming
    return bool(getattr(datamodule, "val_is_test", fallback))


def apply_test_policy(cfg: ExperimentConfig, datamodule: Any, module: GlowModule
                      ) -> ExperimentConfig:
    """Where validation is the test split: refuse ``test.checkpoint=best`` (one line), log
    validation as ``test_monitor/*`` and keep no ``best.ckpt``. Returns the config to run."""
    if not val_is_test(cfg, datamodule):
        return cfg
    if cfg.test.checkpoint == "best":
        raise ConfigError(f"config error: {BEST_ON_TEST}")
    module.log_names = {"val": MONITOR}
    keep = dataclasses.replace(cfg.checkpoint, keep_best=False)
    return dataclasses.replace(cfg, checkpoint=keep)


def final_test_callbacks(cfg: ExperimentConfig) -> list[Callback]:
    """:class:`~glow_lightning.callbacks.PerImageBits` when ``test.per_image``."""
    from glow_lightning.callbacks import PerImageBits

    return [PerImageBits()] if cfg.test.per_image else []


def split_under_test(datamodule: Any) -> str:
    """The name of the split tested: the data module's ``identity()["test_split"]`` when it
    records one, else ``test``."""
    identity = getattr(datamodule, "identity", None)
    info = identity() if callable(identity) else {}
    return str(info.get("test_split") or "test") if isinstance(info, dict) else "test"


def prepare_test(cfg: ExperimentConfig, module: GlowModule, datamodule: Any, step: int,
                 folder: Path) -> None:
    """Put the stated checkpoint's weights into ``module`` (``best``: ``folder/best.ckpt``,
    weights-only) and set what the test logs and records; ``step``: the final step."""
    if cfg.test.checkpoint == "best":
        step = load_weights(module, folder / "best.ckpt")
    module.iw_samples = cfg.test.iw_samples if cfg.test.iw_samples > 1 else 0
    module.test_info = {"test/checkpoint": cfg.test.checkpoint, "test/checkpoint_step": step,
                        "test/split": split_under_test(datamodule)}


def load_weights(module: GlowModule, path: Path) -> int:
    """Load the ``state_dict`` of checkpoint ``path`` (weights-only) into ``module``; returns
    the checkpoint's global step."""
    if not path.is_file():
        raise ConfigError(f"test.checkpoint=best but no validation ran, so '{path}' was not "
                          f"written; test the final weights with glow-lightning test "
                          f"ckpt={path.with_name('last.ckpt')}, or validate during training "
                          "(a lower trainer.check_val_every_n_epoch)")
    checkpoint = load_checkpoint(path)
    module.load_state_dict(checkpoint["state_dict"])
    return int(checkpoint.get("global_step", -1))
