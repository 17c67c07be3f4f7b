"""Value checks of an experiment config beyond its types, one table row per key (Lightning's own
``trainer.*`` values included, so a bad one stops before any data is read), and options given
together that the chosen model would ignore. Every refusal is one ``ConfigError`` line:
``config error: <key>=<value> must be <allowed>``.
"""

from __future__ import annotations

import re
from typing import Any

from glow_lightning.errors import ConfigError


def plain_name(name: str | None) -> bool:
    """Whether ``name`` is one path component (no separator, no ``..``, not absolute).

    >>> plain_name("digits-1"), plain_name("../x"), plain_name("/home"), plain_name("..")
    (True, False, False, False)
    """
    return name is None or (bool(name.strip()) and name not in (".", "..")
                            and not any(c in name for c in "/\\\0"))


def check_values(cfg: Any) -> None:
    """ConfigError naming the first key of :data:`RULES` whose value is refused."""
    for key, ok, allowed in RULES:
        value = _select(cfg, key)
        if not ok(value):
            raise ConfigError(f"config error: {key}={value!r} must be {allowed}")


def _select(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _optional(ok: Any) -> Any:
    return lambda v: v is None or ok(v)


def _devices(value: Any) -> bool:
    """Lightning's ``devices``: a count >= 1, -1 (all), ``auto``, or a list of device ids."""
    if isinstance(value, str):
        text = value.strip()
        return text == "auto" or text == "-1" or (text.isdigit() and int(text) >= 1) or (
            "," in text and all(p.strip().isdigit() for p in text.split(",") if p.strip()))
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, int) and v >= 0 for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and (value >= 1 or value == -1)


def _accelerator(value: str) -> bool:
    if value in ("gpu", "cuda"):  # refused up front, not after the data is loaded
        import torch

        return torch.cuda.is_available()
    return value in ACCELERATORS


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
PRECISIONS = ("64", "64-true", "32", "32-true", "16", "16-mixed", "16-true", "bf16",
              "bf16-mixed", "bf16-true", "transformer-engine", "transformer-engine-float16")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "single_device", "dp",
              "fsdp", "deepspeed", "ddp_find_unused_parameters_true", "ddp_spawn_find_unused_"
              "parameters_true", "ddp_fork_find_unused_parameters_true", "xla", "single_xla")
MAX_TIME = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")
RULES: list[tuple[str, Any, str]] = [  # (key, accepts its value, what is allowed)
    ("trainer.devices", _devices, "a count >= 1, -1 (all), 'auto' or a list of device ids"),
    ("trainer.accelerator", _accelerator,
     f"one of {', '.join(ACCELERATORS)} (gpu/cuda only where torch sees a GPU)"),
    ("trainer.precision", lambda v: str(v) in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    ("trainer.strategy", lambda v: v in STRATEGIES, f"one of {', '.join(STRATEGIES)}"),
    ("trainer.max_time", _optional(lambda v: bool(MAX_TIME.match(v))),
     "DD:HH:MM:SS, e.g. 00:04:00:00 (or null: no limit)"),
    ("trainer.max_epochs", lambda v: v >= -1, ">= 0 (or -1: unlimited)"),
    ("trainer.max_steps", lambda v: v >= -1, ">= 0 (or -1: unlimited)"),
    ("trainer.num_nodes", lambda v: v >= 1, ">= 1"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.check_val_every_n_epoch", lambda v: v >= 1, ">= 1"),
    ("trainer.limit_train_batches", _optional(lambda v: v > 0), "> 0 (or null)"),
    ("trainer.limit_val_batches", _optional(lambda v: v >= 0), ">= 0 (or null)"),
    ("trainer.num_threads", _optional(lambda v: v >= 1), ">= 1 (or null: torch's default)"),
    ("optim.betas", lambda v: len(v) == 2 and all(0 <= b < 1 for b in v),
     "two numbers in [0, 1), e.g. [0.9, 0.999]"),
    ("optim.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("optim.ema_eval", lambda v: v in ("ema", "raw", "auto"),
     "ema, raw or auto (whichever weights scored lower on the latest validation)"),
    ("optim.decay_steps", lambda v: v >= 0, ">= 0 (0: no decay)"),
    ("optim.weight_decay", lambda v: v >= 0, ">= 0"),
    ("callbacks.num_samples", lambda v: v >= 1, ">= 1"),
    ("callbacks.temperatures", lambda v: len(v) >= 1, "a non-empty list, e.g. [0.7]"),
    ("callbacks.every_n_validations", lambda v: v >= 1, ">= 1"),
    ("callbacks.every_n_steps", lambda v: v >= 0, ">= 0 (0: only at validations)"),
    ("callbacks.interpolation_pairs", lambda v: v >= 1, ">= 1"),
    ("callbacks.interpolation_steps", lambda v: v >= 2, ">= 2"),
    ("data.image_size", _optional(lambda v: v >= 1), ">= 1 (or null: the dataset's own)"),
    ("data.eval_batch_size", _optional(lambda v: v >= 1), ">= 1 (or null: data.batch_size)"),
    ("data.num_workers", _optional(lambda v: v >= 0), ">= 0 (or null: automatic)"),
    ("data.max_train", _optional(lambda v: v >= 1), ">= 1 (or null: all)"),
    ("data.max_test", _optional(lambda v: v >= 1), ">= 1 (or null: all)"),
    ("data.val_size", _optional(lambda v: v >= 0),
     ">= 0 (0: validate on the test split; null: the dataset's default)"),
]


GLOW_ONLY = ("model.permutation", "model.coupling", "model.scale_fn", "model.affine_form",
             "model.net_actnorm")
AFFINE_ONLY = ("model.scale_fn", "model.affine_clamp", "model.affine_form")


def check_conflicts(cfg: Any, words: list[str]) -> None:
    """Refuse options given on the command line that the chosen model would ignore: Glow's
    coupling keys for RealNVP (it has checkerboard/channel masks and ``model.realnvp.*``),
    ``model.realnvp.*`` for Glow, a scale setting for additive couplings (they have none)."""
    given = [w.partition("=")[0] for w in words if "=" in w]
    realnvp = cfg.model.architecture == "realnvp"
    ignored = [(k, "model.architecture=realnvp", "model.realnvp.*") for k in given
               if realnvp and k in GLOW_ONLY]
    ignored += [(k, "model.architecture=glow", "model.architecture=realnvp") for k in given
                if not realnvp and k.startswith("model.realnvp.")]
    ignored += [(k, "model.coupling=additive", "model.coupling=affine") for k in given
                if cfg.model.coupling == "additive" and not realnvp and k in AFFINE_ONLY]
    if ignored:
        key, why, fix = ignored[0]
        raise ConfigError(f"config error: {key} conflicts with {why}, which ignores it; drop "
                          f"{key} or use {fix}")


RESUME_FREE = ("data.source", "data.cache_dir", "data.num_workers", "data.eval_batch_size",
               "model.compile",  # where the data lives and how it is read: no effect on results
               "optim.ema_eval")  # which weights evaluate: no effect on training


def differing(old: dict[str, Any], new: dict[str, Any], sections: tuple[str, ...],
              allowed: tuple[str, ...] = ()) -> list[str]:
    """``key: old -> new`` for every dotted key under ``sections`` whose value differs, except
    the keys (or key prefixes) in ``allowed``.

    >>> differing({"model": {"steps": 4, "levels": 2}}, {"model": {"steps": 8, "levels": 2}},
    ...           ("model",))
    ['model.steps: 4 -> 8']
    """
    flat_old, flat_new = flatten(old), flatten(new)
    keys = sorted(k for k in flat_old.keys() | flat_new.keys()
                  if k.split(".")[0] in sections or k in sections)
    return [f"{k}: {flat_old.get(k)} -> {flat_new.get(k)}" for k in keys
            if flat_old.get(k) != flat_new.get(k)
            and not any(k == a or k.startswith(a + ".") for a in allowed)]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as dotted keys.

    >>> flatten({"model": {"steps": 4, "realnvp": {"blocks": 2}}})
    {'model.steps': 4, 'model.realnvp.blocks': 2}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
