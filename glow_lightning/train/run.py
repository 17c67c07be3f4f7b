"""Assemble an experiment from an :class:`ExperimentConfig`: data, module, logger, trainer.

Checkpoints are written atomically every ``checkpoint.every_n_steps`` steps (else every epoch)
and when training ends, to ``<run_dir>/checkpoints/`` (``last.ckpt`` is the newest). ``resume=``
continues a run exactly, mid-epoch included: ``resume=<path.ckpt>``, or ``resume=auto`` with a
fixed ``run_name`` (continue from ``<out_dir>/<run_name>/checkpoints/last.ckpt`` when it exists,
else start). Every checkpoint is read weights-only.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from glow_lightning.config import ExperimentConfig, to_dict, to_yaml
from glow_lightning.errors import ConfigError, DataError, TrainingDiverged
from glow_lightning.train.budget import TimeBudget
from glow_lightning.train.checkpointing import (
    AtomicCheckpointIO,
    StepCheckpoint,
    best_checkpoint,
    check_resumable,
    check_same_experiment,
    resolve_resume,
)
from glow_lightning.train.final_eval import apply_test_policy, final_test_callbacks, prepare_test
from glow_lightning.train.health import health_callbacks
from glow_lightning.train.interrupt import (
    Interruption,
    interrupted,
    requeue,
    slurm_environment,
)
from glow_lightning.train.launch import (
    available_cores,
    busy_cores_notice,
    end_launch,
    init_process_group,
    is_rank_zero,
    node_leader_first,
    shared,
)
from glow_lightning.train.module import GlowModule
from glow_lightning.train.rundir import free_name, own_run_dir, release_run_dir
from glow_lightning.train.safe_load import check_checkpoint
from glow_lightning.train.wandb_run import (
    CheckpointArtifacts,
    WandbSetup,
    finish,
    uploads_checkpoints,
    wandb_logger,
)

if TYPE_CHECKING:
    from glow_lightning.data import ImageDataModule


RUN_NAME_ENV = "GLOW_LIGHTNING_RUN_NAME"


def run_dir_for(cfg: ExperimentConfig) -> Path:
    """``<out_dir>/<run_name>``; without a run name, ``<name>-<time>`` chosen once per launch:
    by rank zero and broadcast when a launcher (torchrun, SLURM) started every process, passed
    through the environment to the processes Lightning's own launcher starts."""
    if cfg.run_name:
        return Path(cfg.out_dir) / cfg.run_name
    own = f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    own = free_name(cfg.out_dir, own)
    if dist.is_initialized():
        name = shared(own)  # every rank takes part in the broadcast
    else:  # a process Lightning's launcher started finds rank zero's name in its environment
        name = (os.environ.get(RUN_NAME_ENV) if not is_rank_zero() else None) or own
    os.environ[RUN_NAME_ENV] = name
    return Path(cfg.out_dir) / name


def build_datamodule(cfg: ExperimentConfig) -> ImageDataModule:
    from glow_lightning.data import build_datamodule as build

    kwargs = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k != "name"}
    try:
        return build(cfg.data.name, **kwargs)
    except DataError:
        raise
    except ValueError as err:
        raise ConfigError(f"config error in data: {err}") from None


def build_module(cfg: ExperimentConfig, image_shape: tuple[int, ...], num_classes: int,
                 n_bits: int) -> GlowModule:
    """The LightningModule for ``cfg`` on images of ``image_shape`` with ``num_classes`` labels
    (used when ``model.conditional``) at ``n_bits``."""
    if cfg.model.conditional and num_classes < 1:
        raise ConfigError("config error: model.conditional=true needs a dataset with labels; "
                          "set data.label_column= or model.conditional=false")
    classes = num_classes if cfg.model.conditional else 0
    try:  # the flow's build checks the model settings against the image shape
        return GlowModule(list(image_shape), cfg.model, num_classes=classes, n_bits=n_bits,
                          optim=cfg.optim, compile=cfg.model.compile, seed=cfg.seed,
                          experiment=to_dict(cfg))
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"config error in model: {err}") from None


def build_logger(cfg: ExperimentConfig, run_dir: Path, resume: str | None = None) -> Logger | bool:
    """The configured logger (W&B: :mod:`glow_lightning.train.wandb_run`)."""
    kind = cfg.logger.kind
    if kind == "none":
        return False
    if kind == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv")
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard")
    return wandb_logger(cfg, run_dir, resume)


def checkpoint_callbacks(cfg: ExperimentConfig, run_dir: Path) -> list[Callback]:
    """The step checkpoints (newest ``checkpoint.keep`` and ``last.ckpt``), then ``best.ckpt``."""
    c, folder = cfg.checkpoint, run_dir / "checkpoints"
    steps = StepCheckpoint(folder, c.every_n_steps, c.keep_last, c.keep)
    return [steps, *([best_checkpoint(folder)] if c.keep_best else [])]


DDP_START = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}


def build_strategy(name: str, running_statistics: bool = False) -> Any:
    """A ``DDPStrategy`` for the ``ddp*`` names, else the name for Lightning to resolve.

    Buffers are re-broadcast from rank zero before every forward only for flows with running
    statistics (batch norm: each rank's would drift apart). Every other buffer of a flow is
    fixed at construction (permutations, LU ``P`` and signs, masks) or set identically on every
    rank (ActNorm's ``initialized``, from all-reduced statistics), where the per-step broadcast
    only costs time. Gradients are views into DDP's buckets (no copy).
    """
    if name not in DDP_START:
        return name
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(start_method=DDP_START[name],  # type: ignore[arg-type]
                       broadcast_buffers=running_statistics, gradient_as_bucket_view=True)


def has_running_statistics(module: torch.nn.Module) -> bool:
    return any(hasattr(m, "running_mean") for m in module.modules())


def build_trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: list[Callback],
                  logger: Logger | bool, running_statistics: bool = False) -> L.Trainer:
    t = cfg.trainer
    strategy = build_strategy(t.strategy, running_statistics)
    extra: dict[str, Any] = {}
    if cfg.data.streaming:  # a fresh stream every epoch: reshuffled, set to that epoch
        extra["reload_dataloaders_every_n_epochs"] = 1
    for key in ("limit_train_batches", "limit_val_batches", "max_time"):
        if getattr(t, key) is not None:
            extra[key] = getattr(t, key)
    return L.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator,
        devices=t.devices, num_nodes=t.num_nodes, strategy=strategy,
        precision=t.precision,  # type: ignore[arg-type]  # Lightning checks the name
        log_every_n_steps=t.log_every_n_steps, check_val_every_n_epoch=t.check_val_every_n_epoch,
        deterministic=t.deterministic, enable_progress_bar=t.enable_progress_bar,
        gradient_clip_val=cfg.optim.grad_clip or None, default_root_dir=str(run_dir),
        logger=logger, callbacks=callbacks, use_distributed_sampler=False,
        num_sanity_val_steps=0,  # ActNorm data init must see training data first
        plugins=[AtomicCheckpointIO(), *slurm_environment()], **extra)


def experiment_callbacks(cfg: ExperimentConfig, run_dir: Path) -> list[Callback]:
    """The checkpoint callbacks first (step checkpoints, then best), the time budget (if any),
    then the observing callbacks of ``cfg.callbacks``."""
    from glow_lightning.callbacks import build_callbacks

    budget = [TimeBudget(cfg.trainer.budget_minutes)] if cfg.trainer.budget_minutes else []
    dashboard: list[Callback] = [WandbSetup()] if cfg.logger.kind == "wandb" else []
    dashboard += health_callbacks(cfg)
    if uploads_checkpoints(cfg):
        dashboard.append(CheckpointArtifacts(run_dir / "checkpoints"))
    return [*checkpoint_callbacks(cfg, run_dir), *budget, *dashboard,
            *build_callbacks(cfg.callbacks)]


def _warn_busy_cores(cfg: ExperimentConfig) -> None:
    t = cfg.trainer
    local = t.devices if t.accelerator == "cpu" and isinstance(t.devices, int) else 1
    notice = busy_cores_notice(torch.get_num_threads(), local, available_cores(),
                               os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0)
    if notice and is_rank_zero():
        print(notice)  # stdout: stderr carries the one-line errors


def prepare_run(cfg: ExperimentConfig) -> tuple[Path, str | None]:
    """Threads, seeds, the launch's process group (torchrun, SLURM), the run directory with its
    config.yaml (written by rank zero), and the checkpoint to resume from (checked weights-only
    loadable before anything else happens)."""
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    _warn_busy_cores(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    init_process_group(cfg.trainer.accelerator)
    run_dir = run_dir_for(cfg)
    resume = resolve_resume(cfg, run_dir)
    if resume:
        check_checkpoint(resume)
        check_same_experiment(resume, to_dict(cfg))
    own_run_dir(run_dir, resuming=bool(cfg.resume), config_yaml=to_yaml(cfg))
    return run_dir, resume


def setup_data_and_module(cfg: ExperimentConfig) -> tuple[ImageDataModule, GlowModule]:
    """The data module, prepared once per node (the node's other processes wait, then read the
    prepared data) and set up, and the LightningModule. The model's settings are checked once,
    when its flow is built: before any data is read (fail fast), except for a class-conditional
    model, whose number of classes comes from the data."""
    datamodule = build_datamodule(cfg)
    shape, n_bits = datamodule.image_shape, datamodule.n_bits
    module = None if cfg.model.conditional else build_module(cfg, shape, 0, n_bits)
    node_leader_first(datamodule.prepare_data)
    datamodule.setup("fit")
    if module is None:
        module = build_module(cfg, shape, datamodule.num_classes, n_bits)
    return datamodule, module


def train(cfg: ExperimentConfig, extra_callbacks: list[Callback] | None = None) -> dict[str, Any]:
    """Fit (or resume), then test once with the stated checkpoint's (EMA, if enabled) weights
    (:mod:`glow_lightning.train.final_eval`). Returns the test metrics. Raises
    :class:`TrainingDiverged` when too many non-finite steps came in a row. The run directory's
    lock is released however it ends."""
    run_dir, resume = prepare_run(cfg)
    try:
        return _fit_and_test(cfg, run_dir, resume, extra_callbacks)
    finally:
        release_run_dir(run_dir)


def _fit_and_test(cfg: ExperimentConfig, run_dir: Path, resume: str | None,
                  extra_callbacks: list[Callback] | None) -> dict[str, Any]:
    datamodule, module = setup_data_and_module(cfg)
    cfg = apply_test_policy(cfg, datamodule, module)
    if resume:
        check_resumable(resume, module)
    callbacks = [*experiment_callbacks(cfg, run_dir), *final_test_callbacks(cfg),
                 *(extra_callbacks or [])]
    checkpoints = callbacks[0]
    assert isinstance(checkpoints, StepCheckpoint)
    interruption = Interruption(checkpoints)
    callbacks.append(interruption)
    trainer = build_trainer(cfg, run_dir, callbacks, build_logger(cfg, run_dir, resume),
                            has_running_statistics(module))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    except SIGTERMException:  # SIGTERM, Ctrl-C or SLURM's SIGUSR1: the last batch is saved
        finish(trainer)
        signum = interruption.signum or signal.SIGTERM
        requeued = requeue() if signum == signal.SIGUSR1 and is_rank_zero() else None
        raise interrupted(signum, trainer.global_step, checkpoints.last_path, run_dir.name,
                          cfg.out_dir, requeued) from None
    except torch.linalg.LinAlgError as err:  # a callback inverted a flow whose weights blew up
        cause = f"a singular matrix in a callback ({str(err).splitlines()[0]})"
        raise TrainingDiverged(module.guard.message(trainer.global_step, checkpoints.passed,
                                                    cause)) from None
    if module.guard.tripped:
        finish(trainer)
        end_launch()
        raise TrainingDiverged(module.guard.message(trainer.global_step, checkpoints.passed))
    try:
        prepare_test(cfg, module, datamodule, trainer.global_step, run_dir / "checkpoints")
    except ConfigError:  # test.checkpoint=best without a validation: close the run first
        finish(trainer)
        end_launch()
        raise
    results = trainer.test(module, datamodule=datamodule)
    finish(trainer)
    end_launch()
    out: dict[str, Any] = dict(results[0]) if results else {}
    out["run_dir"] = str(run_dir)
    out["steps"] = trainer.global_step
    budget = [c for c in callbacks if isinstance(c, TimeBudget)]
    out["planned_steps"] = budget[0].planned if budget else None
    out["data_note"] = datamodule.comparability_note(cfg.paper_bpd)
    out["test_info"] = dict(module.test_info)
    return out
