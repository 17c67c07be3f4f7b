"""Disk stays bounded: a run over 10 checkpoint intervals keeps the newest ``checkpoint.keep``
step files, ``last.ckpt`` and ``best.ckpt`` (the lowest val/bpd), nothing else."""

import torch

from glow_lightning.config import load_config
from glow_lightning.train.run import train
from glow_lightning.train.safe_load import load_checkpoint

RUN = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=80",
       "data.val_size=16",
       "data.max_test=16", "data.batch_size=16", "trainer.max_epochs=-1",
       "trainer.max_steps=20", "trainer.max_time=null", "trainer.check_val_every_n_epoch=1",
       "trainer.enable_progress_bar=false", "logger.kind=none", "callbacks.enabled=false",
       "checkpoint.every_n_steps=2", "checkpoint.keep=2", "run_name=bounded"]


def test_ten_checkpoint_intervals_leave_keep_plus_two_files(tmp_path, digits_cache):
    train(load_config([*RUN, f"out_dir={tmp_path}", f"data.cache_dir={digits_cache}"]))
    folder = tmp_path / "bounded" / "checkpoints"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["best.ckpt", "last.ckpt", "step0000018.ckpt", "step0000020.ckpt"]
    assert load_checkpoint(folder / "last.ckpt")["global_step"] == 20
    best = load_checkpoint(folder / "best.ckpt")
    scores = [v["best_model_score"] for k, v in best["callbacks"].items() if "val/bpd" in k]
    assert scores and torch.isfinite(torch.as_tensor(scores[0]))
