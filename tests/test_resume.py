"""Exact resume: a run killed with SIGKILL mid-epoch and resumed from its last checkpoint trains
the very same steps as an uninterrupted run; checkpoints are written atomically."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import traceback
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from glow_lightning.config import load_config
from glow_lightning.errors import ConfigError, Interrupted
from glow_lightning.train.checkpointing import AtomicCheckpointIO, atomic_save, resolve_resume
from glow_lightning.train.rng import local_rng_state, set_local_rng_state, step_seed
from glow_lightning.train.run import train
from glow_lightning.train.safe_load import unsafe_globals
from tests import resume_driver

# 256 train digits in batches of 32: 8 steps per epoch, 16 in all; checkpoints every 3 steps;
# validation every epoch, EMA, and a learning rate that changes at every step.
RUN = ["model.levels=2", "model.steps=2", "model.hidden_channels=16", "data.max_train=256",
       "data.max_test=64", "data.batch_size=32", "trainer.max_epochs=2", "trainer.max_time=null",
       "trainer.deterministic=true", "trainer.num_threads=1", "trainer.enable_progress_bar=false",
       "trainer.check_val_every_n_epoch=1", "logger.kind=none", "callbacks.enabled=false",
       "optim.ema_decay=0.9", "optim.warmup_steps=5", "optim.decay_steps=12",
       "checkpoint.every_n_steps=3"]
KILL_AFTER = 7  # step 6 is checkpointed, step 7 is trained but not: killed mid-epoch 0
FORK = multiprocessing.get_context("fork")  # a child process without the import cost


def _child(log: Path, pause_at: int, words: list[str]) -> None:
    try:
        resume_driver.run(log, pause_at, words)
    except BaseException:
        log.with_name(log.name + ".error").write_text(traceback.format_exc())
        os._exit(1)
    os._exit(0)


def _start(log: Path, pause_at: int, words: list[str]) -> multiprocessing.Process:
    proc = FORK.Process(target=_child, args=(log, pause_at, words))
    proc.start()
    return proc


def _error(log: Path) -> str:
    path = log.with_name(log.name + ".error")
    return path.read_text()[-3000:] if path.exists() else "no traceback"


def _finish(proc: multiprocessing.Process, log: Path, timeout: float = 240) -> None:
    proc.join(timeout)
    assert proc.exitcode == 0, _error(log)


def _read(log: Path) -> tuple[dict[int, float], float | None]:
    records = [json.loads(line) for line in log.read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in records if "step" in r}
    bpd = next((r["test/bpd"] for r in records if "test/bpd" in r), None)
    return losses, bpd


def _wait_for(path: Path, proc: multiprocessing.Process, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.is_alive(), _error(log)
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkill_mid_epoch_then_resume_repeats_the_uninterrupted_run(tmp_path, digits_cache):
    common = [*RUN, f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}"]
    full = _start(tmp_path / "full.jsonl", -1, [*common, "run_name=full"])
    crash_log = tmp_path / "crash.jsonl"
    crash = _start(crash_log, KILL_AFTER, [*common, "run_name=crash"])
    _wait_for(tmp_path / "crash.jsonl.paused", crash, crash_log)
    ckpts = tmp_path / "crash" / "checkpoints"
    assert (ckpts / "step0000006.ckpt").is_file() and not list(ckpts.glob("*.tmp"))
    os.kill(crash.pid, signal.SIGKILL)
    crash.join(30)
    assert crash.exitcode == -signal.SIGKILL
    resumed_log = tmp_path / "resumed.jsonl"
    resumed = _start(resumed_log, -1, [*common, "run_name=crash", "resume=auto"])
    _finish(full, tmp_path / "full.jsonl")
    _finish(resumed, resumed_log)

    expected, expected_bpd = _read(tmp_path / "full.jsonl")
    before, _ = _read(crash_log)
    after, bpd = _read(resumed_log)
    assert sorted(expected) == list(range(1, 17))
    assert sorted(before) == list(range(1, KILL_AFTER + 1))
    assert sorted(after) == list(range(KILL_AFTER, 17))  # continues after step 6, mid-epoch
    for step, loss in [*before.items(), *after.items()]:
        assert loss == pytest.approx(expected[step], abs=1e-6), step
    assert bpd == pytest.approx(expected_bpd, abs=1e-6)
    assert (tmp_path / "crash" / "checkpoints" / "step0000016.ckpt").is_file()  # saved at the end
    assert unsafe_globals(tmp_path / "crash" / "checkpoints" / "last.ckpt") == []  # weights-only
    _assert_same_ema(tmp_path / "full", tmp_path / "crash")


def _assert_same_ema(full: Path, resumed: Path) -> None:
    """The EMA shadow weights and update count of the resumed run equal the uninterrupted run's
    bit for bit (the warmed-up decay depends on the count)."""
    states = [torch.load(run / "checkpoints" / "step0000016.ckpt", weights_only=True)["state_dict"]
              for run in (full, resumed)]
    keys = [k for k in states[0] if k.startswith("ema.")]
    assert "ema.num_updates" in keys and int(states[0]["ema.num_updates"]) == 16
    assert len(keys) > 10 and sorted(keys) == sorted(k for k in states[1] if k.startswith("ema."))
    for key in keys:
        assert torch.equal(states[0][key], states[1][key]), key


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, digits_cache):
    """The 16 steps of RUN (2 epochs of 8, augmented digits, EMA) without a stop."""
    out = tmp_path_factory.mktemp("full")
    resume_driver.run(out / "full.jsonl", -1, [*RUN, f"data.cache_dir={digits_cache}",
                                               f"out_dir={out}", "run_name=full"])
    return _read(out / "full.jsonl")


@pytest.mark.parametrize("stop, extra", [
    (8, []),  # the epoch's last batch, saved when training ends (step files every 3)
    (8, ["checkpoint.every_n_steps=1"]),  # the epoch's last batch, saved as a step file
    (7, []),  # mid-epoch
])
def test_a_stop_at_or_inside_an_epoch_boundary_resumes_exactly(tmp_path, digits_cache,
                                                               uninterrupted, stop, extra):
    """Stopped by ``trainer.max_steps`` and continued with ``resume=auto``: every step's loss
    and the test bits/dim are those of the uninterrupted run, bit for bit. (At an epoch boundary
    this once drifted: augmentation noise came from a global generator the loaders draw from a
    varying number of times between epochs, and a final save recorded one epoch too many.)"""
    expected, expected_bpd = uninterrupted
    common = [*RUN, *extra, f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}",
              "run_name=part"]
    resume_driver.run(tmp_path / "part.jsonl", -1, [*common, f"trainer.max_steps={stop}"])
    resume_driver.run(tmp_path / "rest.jsonl", -1, [*common, "resume=auto"])
    before, _ = _read(tmp_path / "part.jsonl")
    after, bpd = _read(tmp_path / "rest.jsonl")
    assert sorted(after) == list(range(stop + 1, 17))
    assert {**before, **after} == expected  # exact equality, every step
    assert bpd == expected_bpd


class SignalAt(Callback):
    """Sends ``signum`` to this process after training step ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_says_how_to_resume_and_the_resume_is_exact(
        tmp_path, digits_cache, uninterrupted, signum):
    expected, expected_bpd = uninterrupted
    common = [*RUN, f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}", "run_name=sig"]
    losses = resume_driver.StepLosses(tmp_path / "part.jsonl")
    handler = signal.getsignal(signal.SIGINT)  # the default, or SIG_IGN in a background job
    with pytest.raises(Interrupted) as caught:
        train(load_config(common), extra_callbacks=[losses, SignalAt(5, signum)])
    assert caught.value.exit_code == 128 + signum
    assert f"interrupted by {signal.Signals(signum).name} at step 5" in str(caught.value)
    assert "run_name=sig resume=auto" in str(caught.value)
    assert signal.getsignal(signal.SIGINT) is handler  # handed back
    resume_driver.run(tmp_path / "rest.jsonl", -1, [*common, "resume=auto"])
    before, _ = _read(tmp_path / "part.jsonl")
    after, bpd = _read(tmp_path / "rest.jsonl")
    assert sorted(before) == list(range(1, 6)) and sorted(after) == list(range(6, 17))
    assert {**before, **after} == expected and bpd == expected_bpd


def test_atomic_save_leaves_the_previous_checkpoint_when_a_write_fails(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_save({"w": torch.ones(3)}, path)
    with pytest.raises(Exception):  # noqa: B017 - pickling a lambda fails half way through
        atomic_save({"w": torch.zeros(3), "bad": lambda: None}, path)
    assert torch.equal(AtomicCheckpointIO().load_checkpoint(path)["w"], torch.ones(3))


def test_resume_auto_needs_a_fixed_run_name_and_tolerates_a_fresh_start(tmp_path):
    with pytest.raises(ConfigError, match="resume=auto needs a fixed run_name"):
        resolve_resume(load_config(["resume=auto"]), tmp_path)
    cfg = load_config(["resume=auto", "run_name=x"])
    assert resolve_resume(cfg, tmp_path / "x") is None
    (tmp_path / "x" / "checkpoints").mkdir(parents=True)
    (tmp_path / "x" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert resolve_resume(cfg, tmp_path / "x") == str(tmp_path / "x" / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match="resume='/no/such.ckpt' does not exist"):
        resolve_resume(load_config(["resume=/no/such.ckpt"]), tmp_path)


def test_global_rng_state_round_trips_and_noise_seeds_are_distinct():
    state = local_rng_state()
    first = torch.rand(4)
    set_local_rng_state(state)
    assert torch.equal(torch.rand(4), first)
    seeds = {step_seed(0, step, rank) for step in range(1000) for rank in range(8)}
    assert len(seeds) == 8000


def _stream_words(source: str, out: Path) -> list[str]:
    """Hub-format parquet read as a stream (a fresh, reshuffled stream each epoch): 64 training
    images in batches of 16, 4 steps an epoch, 8 in all, random shifts, EMA, a step file a step."""
    return ["experiment=cifar10_glow", f"data.source={source}", "data.streaming=true",
            "data.val_size=0", "data.batch_size=16", "data.augment=true", "data.num_workers=0",
            "model.levels=2", "model.steps=1", "model.hidden_channels=8",
            "trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto",
            "trainer.num_threads=1", "trainer.max_epochs=2", "trainer.max_steps=-1",
            "trainer.max_time=null", "trainer.deterministic=true",
            "trainer.enable_progress_bar=false", "trainer.check_val_every_n_epoch=1",
            "logger.kind=none", "callbacks.enabled=false", "optim.ema_decay=0.9",
            "optim.warmup_steps=2", "checkpoint.every_n_steps=1", f"out_dir={out}"]


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    from tests.data_helpers import hub_parquet

    tmp = tmp_path_factory.mktemp("stream")
    source = hub_parquet(tmp / "cifar10", train=64, test=16)
    resume_driver.run(tmp / "full.jsonl", -1, [*_stream_words(source, tmp), "run_name=full"])
    return source, _read(tmp / "full.jsonl")


@pytest.mark.parametrize("stop", [4, 3])  # the first epoch's last batch; mid-epoch
def test_a_streamed_run_resumes_exactly_at_and_inside_an_epoch_boundary(tmp_path, streamed,
                                                                        stop):
    """A stream has no index to restore: the resumed epoch's stream skips the batches the
    checkpoint had trained on. Every step's loss and the test bits/dim equal the uninterrupted
    run's, bit for bit."""
    source, (expected, expected_bpd) = streamed
    assert sorted(expected) == list(range(1, 9))
    common = [*_stream_words(source, tmp_path), "run_name=part"]
    resume_driver.run(tmp_path / "part.jsonl", -1, [*common, f"trainer.max_steps={stop}"])
    resume_driver.run(tmp_path / "rest.jsonl", -1, [*common, "resume=auto"])
    before, _ = _read(tmp_path / "part.jsonl")
    after, bpd = _read(tmp_path / "rest.jsonl")
    assert sorted(after) == list(range(stop + 1, 9))
    assert {**before, **after} == expected
    assert bpd == expected_bpd
