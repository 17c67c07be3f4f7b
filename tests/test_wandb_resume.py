"""A resumed training continues its W&B run: the same run id, history picking up where it
stopped (read back from the offline ``.wandb`` records)."""

import time
from pathlib import Path

from glow_lightning.config import load_config
from glow_lightning.train.run import train
from glow_lightning.train.wandb_run import wandb_run_id
from tests.wandb_reader import find_run_dirs, isolate_wandb, read_history, wait_closed

RUN = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=64",
       "data.max_test=32", "data.batch_size=16", "trainer.max_time=null",
       "trainer.enable_progress_bar=false", "callbacks.enabled=false", "run_name=resumed",
       "trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto",
       "trainer.log_every_n_steps=1", "checkpoint.every_n_steps=2",
       "logger.kind=wandb", "logger.mode=offline"]


def _steps(run_dir: Path) -> list[int]:
    return [int(r["trainer/global_step"]) for r in read_history(run_dir)
            if "train/bpd_step" in r]


def test_resume_auto_continues_the_wandb_run(tmp_path, digits_cache, monkeypatch):
    isolate_wandb(monkeypatch, tmp_path / "wandb_env")
    words = [*RUN, f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}"]
    train(load_config([*words, "trainer.max_steps=4"]))
    time.sleep(1.05 - time.time() % 1)  # W&B names run folders by the second: a new one
    train(load_config([*words, "trainer.max_steps=8", "resume=auto"]))
    first, second = map(wait_closed, find_run_dirs(tmp_path / "resumed"))
    run_id = first.name.rsplit("-", 1)[1]
    assert second.name.rsplit("-", 1)[1] == run_id
    assert wandb_run_id(str(tmp_path / "resumed" / "checkpoints" / "last.ckpt")) == run_id
    before, after = _steps(first), _steps(second)
    rows = read_history(second)  # for the message: what the resumed run's log does hold
    seen = sorted({key for row in rows for key in row})
    # rows at the global step after each update: 1..4, then 5..8
    assert before and after and min(after) > max(before) and max(after) == 8, (
        f"steps before {before}, after {after}; the resumed run's log has {len(rows)} history "
        f"rows with keys {seen} ({second})")


def test_a_fresh_start_gets_a_new_wandb_run(tmp_path):
    assert wandb_run_id(None) is None
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert wandb_run_id(str(ckpt)) is None  # no W&B folder next to the checkpoint
    (tmp_path / "run" / "wandb" / "offline-run-20260101_000000-aaaa1111").mkdir(parents=True)
    (tmp_path / "run" / "wandb" / "offline-run-20260102_000000-bbbb2222").mkdir()
    (tmp_path / "run" / "wandb" / "latest-run").mkdir()
    assert wandb_run_id(str(ckpt)) == "bbbb2222"  # the newest run folder
