"""Assemble an experiment from an :class:`ExperimentConfig`: data, module, logger, trainer."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from glow_lightning.config import ConfigError, ExperimentConfig, to_dict, to_yaml
from glow_lightning.module import GlowModule


def run_dir_for(cfg: ExperimentConfig) -> Path:
    name = cfg.run_name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out_dir) / name


def build_datamodule(cfg: ExperimentConfig) -> L.LightningDataModule:
    from glow_lightning.data import build_datamodule as build

    kwargs = {k: v for k, v in dataclasses.asdict(cfg.data).items() if k != "name"}
    return build(cfg.data.name, **kwargs)


def model_kwargs(cfg: ExperimentConfig, image_shape: tuple[int, ...], num_classes: int) -> dict:
    m = cfg.model
    if m.conditional and num_classes < 1:
        raise ConfigError("config error: model.conditional=true needs a dataset with labels; "
                          "set data.label_column= or model.conditional=false")
    return dict(image_shape=list(image_shape), levels=m.levels, steps=m.steps,
                hidden_channels=m.hidden_channels, coupling=m.coupling,
                permutation=m.permutation, learn_top=m.learn_top, split_prior=m.split_prior,
                num_classes=num_classes if m.conditional else 0, architecture=m.architecture,
                memory_saving=m.memory_saving, seed=cfg.seed)


def build_module(cfg: ExperimentConfig, image_shape: tuple[int, ...], num_classes: int) -> GlowModule:
    optim = {k: v for k, v in dataclasses.asdict(cfg.optim).items() if k != "grad_clip"}
    try:
        return GlowModule(model=model_kwargs(cfg, image_shape, num_classes), n_bits=cfg.data.n_bits,
                          optim=optim, compile=cfg.model.compile, experiment=to_dict(cfg))
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"config error in model: {err}") from None


def _wandb_online_possible() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path.home() / ".netrc"
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def wandb_mode(cfg: ExperimentConfig) -> str:
    """``auto``: the WANDB_MODE variable if set, else online only when an API key is configured."""
    if cfg.logger.mode != "auto":
        return cfg.logger.mode
    return os.environ.get("WANDB_MODE") or ("online" if _wandb_online_possible() else "offline")


def build_logger(cfg: ExperimentConfig, run_dir: Path) -> Logger | bool:
    kind = cfg.logger.kind
    if kind == "none":
        return False
    if kind == "csv":
        return CSVLogger(save_dir=str(run_dir), name="csv")
    if kind == "tensorboard":
        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard")
    mode = wandb_mode(cfg)
    os.environ["WANDB_MODE"] = mode
    return WandbLogger(project=cfg.logger.project, group=cfg.logger.group, tags=cfg.logger.tags,
                       name=run_dir.name, save_dir=str(run_dir), offline=mode != "online",
                       log_model="all" if mode == "online" and cfg.logger.log_checkpoints else False,
                       config=to_dict(cfg))


def checkpoint_callback(cfg: ExperimentConfig, run_dir: Path) -> ModelCheckpoint:
    every = cfg.checkpoint.every_n_steps or None
    return ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), save_last=cfg.checkpoint.keep_last,
                           every_n_train_steps=every, save_top_k=-1 if every else 1,
                           filename="step{step:07d}", auto_insert_metric_name=False)


def build_trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: list[Callback],
                  logger: Logger | bool) -> L.Trainer:
    t = cfg.trainer
    extra: dict[str, Any] = {}
    for key in ("limit_train_batches", "limit_val_batches", "max_time"):
        if getattr(t, key) is not None:
            extra[key] = getattr(t, key)
    return L.Trainer(
        max_epochs=t.max_epochs, max_steps=t.max_steps, accelerator=t.accelerator,
        devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
        log_every_n_steps=t.log_every_n_steps, check_val_every_n_epoch=t.check_val_every_n_epoch,
        deterministic=t.deterministic, enable_progress_bar=t.enable_progress_bar,
        gradient_clip_val=cfg.optim.grad_clip or None, default_root_dir=str(run_dir),
        logger=logger, callbacks=callbacks, use_distributed_sampler=False,
        num_sanity_val_steps=0,  # ActNorm data init must see training data first
        **extra)


def experiment_callbacks(cfg: ExperimentConfig, run_dir: Path) -> list[Callback]:
    from glow_lightning.callbacks import build_callbacks

    return [checkpoint_callback(cfg, run_dir), *build_callbacks(cfg.callbacks)]


def train(cfg: ExperimentConfig) -> dict[str, Any]:
    """Fit, then test with the final (EMA, if enabled) weights. Returns the test metrics."""
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = run_dir_for(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    module = build_module(cfg, datamodule.image_shape, datamodule.num_classes)
    trainer = build_trainer(cfg, run_dir, experiment_callbacks(cfg, run_dir),
                            build_logger(cfg, run_dir))
    trainer.fit(module, datamodule=datamodule)
    results = trainer.test(module, datamodule=datamodule)
    _finish_wandb(trainer)
    out = dict(results[0]) if results else {}
    out["run_dir"] = str(run_dir)
    return out


def _finish_wandb(trainer: L.Trainer) -> None:
    if any(isinstance(lg, WandbLogger) for lg in trainer.loggers) and trainer.is_global_zero:
        import wandb

        wandb.finish()
