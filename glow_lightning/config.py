"""Typed experiment configuration: dataclasses + YAML files in ``configs/`` + dotlist overrides.

``load_config(["experiment=mnist_glow", "model.steps=16"])`` merges, in order, the dataclass
defaults, ``configs/experiment/<name>.yaml`` (or ``config=<path.yaml>``), and the overrides.
Unknown keys and wrong types raise :class:`ConfigError` with one line naming the key and the fix.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from glow_lightning.checks import RESUME_FREE, check_conflicts, check_values, differing, plain_name
from glow_lightning.errors import ConfigError
from glow_lightning.flows.builder import CHOICES as MODEL_CHOICES
from glow_lightning.flows.spec import FlowConfig
from glow_lightning.ops import N_BITS

__all__ = ["MODEL_CHOICES", "RESUME_FREE", "ConfigError", "ExperimentConfig", "check_conflicts",
           "differing", "load_config", "merge_config"]

DEFAULT_EXPERIMENT = "digits_glow"


@dataclass
class DataConfig:
    name: str = "digits"  # digits | mnist | cifar10 | imagenet32/64 | lsun_* | celebahq | svhn ...
    source: str | None = None  # Hub id, save_to_disk folder, parquet file(s) or image folder
    image_column: str | None = None
    label_column: str | None = None
    n_bits: int | None = None  # None: the dataset's own (5 for CelebA-HQ, else 8)
    image_size: int | None = None
    batch_size: int = 64
    eval_batch_size: int | None = None
    num_workers: int | None = None  # None: worker processes where images are decoded per item
    streaming: bool = False  # read the source as streams (Hub ids too big to download)
    val_size: int | None = None  # held out of train; None: the dataset's default; 0: val = test
    version: str | None = None  # which copy of the data (imagenet*: hub | oord); None: default
    seed: int = 0
    augment: bool = False
    convert_mode: bool = False  # convert grey images to RGB (or back) instead of refusing them
    cache_dir: str | None = None
    max_train: int | None = None
    max_test: int | None = None


@dataclass
class ModelConfig(FlowConfig):
    """The flow (every :class:`~glow_lightning.flows.spec.FlowConfig` key) and how to train it."""

    conditional: bool = False  # class-conditional prior + auxiliary classifier (needs labels)
    compile: bool = False  # torch.compile the flow for training (after the ActNorm data init)


EMA_EVAL_ALIASES = {"true": "ema", "false": "raw"}  # the boolean ``optim.ema_eval`` once was


@dataclass
class OptimConfig:
    optimizer: str = "adamax"  # adamax | adam
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0  # L2 on every parameter (Adam's weight_decay)
    scale_l2: float = 0.0  # L2 on scale parameters only (RealNVP: 5e-5; flows.scale_parameters)
    warmup_steps: int = 200
    decay_steps: int = 0  # > 0: cosine decay of the learning rate to 0 at this step
    decay_fraction: float = 1.0  # the decay spans this last fraction of the steps after warmup
    grad_clip: float = 0.0  # max gradient norm; 0 disables
    ema_decay: float = 0.0  # Polyak averaging of the weights for eval and sampling; 0 disables
    # which weights evaluate, test and sample with EMA on: ema | raw | auto (whichever scored
    # lower on the latest validation; raw until one did); true/false read as ema/raw
    ema_eval: str = "ema"
    # the average's horizon shrinks with the learning rate (its step weight divided by the rate
    # over its peak), so at the end of an annealed schedule it reaches the raw weights; false:
    # the fixed horizon of the classic average
    ema_follow_lr: bool = True
    class_loss_weight: float = 0.01
    max_skipped_in_row: int = 20  # stop after this many non-finite steps in a row (all skipped)

    def __post_init__(self) -> None:
        self.ema_eval = EMA_EVAL_ALIASES.get(str(self.ema_eval).lower(), str(self.ema_eval))


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: int = -1
    max_time: str | None = None  # "DD:HH:MM:SS": a hard stop
    budget_minutes: float | None = None  # plan max_steps and the LR decay to end training in time
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    log_every_n_steps: int = 10
    check_val_every_n_epoch: int = 1
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None
    deterministic: bool = False
    enable_progress_bar: bool = True
    num_threads: int | None = None  # torch intra-op threads per process


@dataclass
class LoggerConfig:
    kind: str = "wandb"  # wandb | csv | tensorboard | none
    project: str = "glow-lightning"
    group: str | None = None  # W&B group; default: the experiment's name
    job_type: str = "train"  # W&B job type: train, ablation-cell, ...
    tags: list[str] = field(default_factory=list)  # beside data/architecture/coupling/permutation
    mode: str = "auto"  # auto (offline unless an API key is configured) | offline | online
    log_checkpoints: bool = True
    extra_config: dict[str, Any] = field(default_factory=dict)  # more top-level W&B config keys


@dataclass
class CallbackConfig:
    temperatures: list[float] = field(default_factory=lambda: [0.0, 0.5, 0.7, 0.8, 0.9, 1.0])
    num_samples: int = 64
    interpolation_pairs: int = 4
    interpolation_steps: int = 8
    every_n_validations: int = 1  # media at every n-th validation the trainer runs, and the end
    every_n_steps: int = 0  # > 0: media every n training steps as well
    seed: int = 1234
    enabled: bool = True
    manipulation_attribute: int | None = None  # a class id: log an attribute-manipulation grid
    manipulation_source: int | None = None  # move images of this class (default: all others)


@dataclass
class CheckpointConfig:
    every_n_steps: int = 0  # 0: at the end of each epoch; always once more when training ends
    keep: int = 3  # the newest step checkpoints kept (older ones are deleted)
    keep_last: bool = True  # <run_dir>/checkpoints/last.ckpt, overwritten at every save
    keep_best: bool = True  # <run_dir>/checkpoints/best.ckpt: the lowest val/bpd so far


@dataclass
class TestConfig:
    """The final test: once, on a stated checkpoint (see README, "Reporting numbers")."""

    __test__ = False  # not a pytest test class
    checkpoint: str = "last"  # last: the final weights | best: best.ckpt, chosen on validation
    iw_samples: int = 1  # > 1: also the importance-weighted bound test/bpd_iw{K} (Flow++)
    per_image: bool = True  # per_image.csv, a histogram and the worst/best images


@dataclass
class ExperimentConfig:
    name: str = DEFAULT_EXPERIMENT
    seed: int = 0
    out_dir: str = "runs"
    run_name: str | None = None
    resume: str | None = None  # a .ckpt path, or "auto": <run_dir>/checkpoints/last.ckpt if any
    resume_allow: str = ""  # model/data/optim keys a resume may change, e.g. "optim.lr,data.seed"
    paper_bpd: float | None = None  # the paper's test bpd for this dataset, for comparison
    notes: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    test: TestConfig = field(default_factory=TestConfig)


def configs_root() -> Path:
    """The folder holding the shipped YAML files (``glow_lightning.configs`` package data)."""
    return Path(str(importlib.resources.files("glow_lightning.configs")))


def experiment_names() -> list[str]:
    return sorted(p.stem for p in (configs_root() / "experiment").glob("*.yaml"))


def _one_line(err: OmegaConfBaseException) -> str:
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    key = getattr(err, "full_key", None)
    where = f" (at '{key}')" if key else ""
    return f"config error{where}: {first}"


def _experiment_file(name: str) -> Path:
    path = configs_root() / "experiment" / f"{name}.yaml"
    if name not in experiment_names():  # a name, never a path out of configs/
        names = ", ".join(experiment_names())
        raise ConfigError(f"unknown experiment '{name}'; available: {names}")
    return path


def _yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; pass config=<path to a .yaml>")
    try:
        loaded = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as err:  # malformed, or a !!python tag
        first = " ".join(str(err).split())[:160]
        raise ConfigError(f"config error: '{path}' is not a valid config file ({first}); fix "
                          "its YAML (plain mappings, lists and values; no !! tags)") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"config file '{path}' must hold a mapping at the top level")
    loaded.pop("defaults", None)
    return loaded


def _split_selectors(overrides: list[str]) -> tuple[list[Path], list[str]]:
    files, rest = [], []
    for item in overrides:
        key, _, value = item.partition("=")
        if key == "experiment":
            files.append(_experiment_file(value))
        elif key == "config":
            files.append(Path(value))
        else:
            rest.append(item)
    return files, rest


def load_config(overrides: list[str] | None = None) -> ExperimentConfig:
    """Defaults ← experiment/config files ← dotlist overrides; validated, typed."""
    files, dotlist = _split_selectors(list(overrides or []))
    if not files:
        files = [_experiment_file(DEFAULT_EXPERIMENT)]
    return merge_config(*(compose(path) for path in files), dotlist=dotlist)


def _base_file(name: str, within: Path) -> Path:
    """A ``base:`` entry: ``configs/base/<name>.yaml`` or ``configs/experiment/<name>.yaml``."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise ConfigError(f"config file '{within}': base '{name}' must be the name of a file in "
                          "configs/base/ or configs/experiment/ (no path)")
    for folder in ("base", "experiment"):
        path = configs_root() / folder / f"{name}.yaml"
        if path.is_file():
            return path
    known = sorted(p.stem for p in (configs_root() / "base").glob("*.yaml"))
    raise ConfigError(f"config file '{within}': unknown base '{name}'; configs/base/ holds "
                      f"{', '.join(known)}, or name an experiment")


def compose(path: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    """The YAML file at ``path`` merged over its ``base:`` files (a name or a list, each composed
    the same way, earlier bases first): an experiment states only what differs from its base."""
    if path in chain:
        loop = " -> ".join(p.stem for p in (*chain, path))
        raise ConfigError(f"config files name each other as base in a loop: {loop}")
    loaded = _yaml(path)
    bases = loaded.pop("base", None) or []
    names = [bases] if isinstance(bases, str) else list(bases)
    parents = [compose(_base_file(str(n), path), (*chain, path)) for n in names]
    merged = OmegaConf.merge(*parents, loaded) if parents else loaded
    assert isinstance(merged, DictConfig)
    return merged


def merge_config(*sources: Any, dotlist: list[str] | None = None) -> ExperimentConfig:
    """The dataclass defaults ← each of ``sources`` (mappings, e.g. a loaded YAML file or a
    checkpoint's stored config) ← ``dotlist`` overrides; typed and validated, with every problem
    raised as one-line :class:`ConfigError`."""
    dotlist = list(dotlist or [])
    bad = [d for d in dotlist if "=" not in d]
    if bad:
        raise ConfigError(f"override '{bad[0]}' is not of the form key=value (e.g. model.steps=16)")
    try:
        cfg = OmegaConf.structured(ExperimentConfig)
        for source in sources:
            cfg = OmegaConf.merge(cfg, source)
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as err:
        raise ConfigError(_one_line(err)) from None
    assert isinstance(obj, ExperimentConfig)
    validate(obj)
    return obj


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(f"config error: {message}")


def validate(cfg: ExperimentConfig) -> None:
    """Range and choice checks that the type system cannot express."""
    _check(plain_name(cfg.run_name),
           f"run_name={cfg.run_name!r} must be a plain name (one folder under out_dir: no '/', "
           "no '..', not absolute); set run_name=<name>, and out_dir=<folder> for the location")
    _check(cfg.data.n_bits is None or cfg.data.n_bits in N_BITS,
           f"data.n_bits={cfg.data.n_bits} must be in 1..8 (or null: the dataset's own)")
    _check(cfg.data.batch_size >= 1, f"data.batch_size={cfg.data.batch_size} must be >= 1")
    _check(cfg.data.val_size is None or cfg.data.val_size >= 0,
           f"data.val_size={cfg.data.val_size} must be >= 0 (or null: the dataset's default)")
    _check(cfg.optim.optimizer in ("adamax", "adam"),
           f"optim.optimizer='{cfg.optim.optimizer}' must be one of adamax, adam")
    _check(cfg.optim.lr > 0, f"optim.lr={cfg.optim.lr} must be > 0")
    _check(0.0 <= cfg.optim.ema_decay < 1.0,
           f"optim.ema_decay={cfg.optim.ema_decay} must be in [0, 1)")
    _check(0.0 < cfg.optim.decay_fraction <= 1.0,
           f"optim.decay_fraction={cfg.optim.decay_fraction} must be in (0, 1]")
    _check(cfg.optim.grad_clip >= 0, f"optim.grad_clip={cfg.optim.grad_clip} must be >= 0")
    _check(cfg.optim.scale_l2 >= 0, f"optim.scale_l2={cfg.optim.scale_l2} must be >= 0")
    _check(cfg.optim.max_skipped_in_row >= 1,
           f"optim.max_skipped_in_row={cfg.optim.max_skipped_in_row} must be >= 1")
    _check(cfg.trainer.budget_minutes is None or cfg.trainer.budget_minutes > 0,
           f"trainer.budget_minutes={cfg.trainer.budget_minutes} must be > 0 (or null: no budget)")
    _check(cfg.checkpoint.keep >= 1, f"checkpoint.keep={cfg.checkpoint.keep} must be >= 1")
    _check(cfg.checkpoint.every_n_steps >= 0,
           f"checkpoint.every_n_steps={cfg.checkpoint.every_n_steps} must be >= 0 (0: every epoch)")
    _check(cfg.logger.kind in ("wandb", "csv", "tensorboard", "none"),
           f"logger.kind='{cfg.logger.kind}' must be one of wandb, csv, tensorboard, none")
    _check(cfg.logger.mode in ("auto", "offline", "online", "disabled"),
           f"logger.mode='{cfg.logger.mode}' must be one of auto, offline, online, disabled")
    _check(all(t >= 0 for t in cfg.callbacks.temperatures), "callbacks.temperatures must be >= 0")
    validate_test(cfg)
    check_values(cfg)


BEST_ON_TEST = ("test.checkpoint=best would pick weights by a test-split number (data.val_size=0 "
                "validates on the test split); set data.val_size=<N images held out of train> "
                "or test.checkpoint=last")


def validate_test(cfg: ExperimentConfig) -> None:
    """The ``test`` section; ``best`` is refused where validation is the test split."""
    t = cfg.test
    _check(t.checkpoint in ("last", "best"),
           f"test.checkpoint='{t.checkpoint}' must be one of last, best")
    _check(t.iw_samples >= 1, f"test.iw_samples={t.iw_samples} must be >= 1")
    _check(t.checkpoint != "best" or cfg.data.val_size != 0, BEST_ON_TEST)


def to_yaml(cfg: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    out = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]
