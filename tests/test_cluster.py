"""Cluster rehearsal on CPU (gloo, 2 processes) on a local Hub-format CIFAR-10 copy (parquet
shards of PNG bytes, columns ``img``/``label``), through the two launchers users run:
``torchrun -m glow_lightning.cli train`` and ``glow-lightning train trainer.devices=2
trainer.strategy=ddp`` (Lightning starts the second process; what ``make train`` does).

Without ``run_name`` a launch makes one run directory, one W&B run and each checkpoint once;
test bits/dim count each of the 21 test images once (21 is not divisible by 2) and equal a
single-process evaluation of the same checkpoint. A rank killed with SIGKILL mid-epoch stops the
job; ``resume=auto`` then repeats the uninterrupted run's per-step training losses exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glow_lightning.commands.test import evaluate_checkpoint
from tests.data_helpers import hub_parquet
from tests.wandb_reader import WANDB_ENV_DIRS, find_run_dirs

ROOT = Path(__file__).resolve().parents[1]
TEST_IMAGES, STEPS, KILL_AT = 21, 12, 7  # 96 train images, 2 ranks x 8: 6 steps an epoch
VAL_IMAGES = 16  # held out of 112: best.ckpt is chosen on them, never on the test split
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
LIGHTNING = [sys.executable]  # Lightning's own launcher starts the second process


def words(source: str, out: Path) -> list[str]:
    return [
        "experiment=cifar10_glow", f"data.source={source}", "data.batch_size=8",
        f"data.val_size={VAL_IMAGES}",
        "data.augment=false", "model.levels=2", "model.steps=1", "model.hidden_channels=8",
        "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp",
        "trainer.num_threads=1", "trainer.max_epochs=-1", f"trainer.max_steps={STEPS}",
        "trainer.max_time=null", "trainer.check_val_every_n_epoch=1",
        "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
        "optim.warmup_steps=2", "callbacks.num_samples=4", "callbacks.interpolation_pairs=2",
        "checkpoint.every_n_steps=2", "checkpoint.keep=2", f"out_dir={out}"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(source, tmp folder, environment) shared by the rehearsals."""
    import os

    tmp = tmp_path_factory.mktemp("cluster")
    # no WANDB_* from this process: a W&B service that in-process tests started here would be
    # shared by the launched jobs (WANDB_SERVICE), and a killed job's run would stay "in use"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "_WANDB"))}
    env.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    for leaked in ("GLOW_LIGHTNING_RUN_NAME", "LOCAL_RANK", "NODE_RANK", "RANK", "WORLD_SIZE",
                   "MASTER_ADDR", "MASTER_PORT"):  # from in-process tests
        env.pop(leaked, None)
    for name in WANDB_ENV_DIRS:
        (tmp / name.lower()).mkdir()
        env[name] = str(tmp / name.lower())
    return hub_parquet(tmp / "cifar10", train=96 + VAL_IMAGES, test=TEST_IMAGES), tmp, env


def launch(cluster, launcher, log: str, extra: list[str], kill_at: int = -1,
           timeout: float = 240) -> int:
    source, tmp, env = cluster
    cmd = [*launcher, "-m", "tests.cluster_driver", str(tmp / log), str(kill_at),
           *words(source, tmp / "runs" / log.split("-")[0]), *extra]
    done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=timeout)
    (tmp / f"{log}.out").write_text(done.stdout + done.stderr)
    return done.returncode


def records(cluster, log: str, rank: int) -> tuple[dict[int, float], dict]:
    """(step -> training loss, later lines win; the final record) of one rank's log."""
    lines = [json.loads(line) for line in (cluster[1] / f"{log}.rank{rank}.jsonl").open()]
    losses = {r["step"]: r["loss"] for r in lines if "step" in r}
    return losses, next((r for r in reversed(lines) if "test/bpd" in r), {})


def test_one_launch_one_run_directory_one_wandb_run_each_image_once(cluster, launcher_case):
    launcher, name = launcher_case
    assert launch(cluster, launcher, name, []) == 0, (cluster[1] / f"{name}.out").read_text()
    runs = list((cluster[1] / "runs" / name).iterdir())
    assert len(runs) == 1, runs  # ranks agreed on the run name
    run = runs[0]
    assert len(find_run_dirs(run)) == 1  # one W&B run
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == ["best.ckpt", "last.ckpt", "step0000010.ckpt", "step0000012.ckpt"]
    record = json.loads((run / "summary.json").read_text())
    assert record["num_images"] == TEST_IMAGES
    single = evaluate_checkpoint(str(run / "checkpoints" / "last.ckpt"), [])["test/bpd"]
    assert single == pytest.approx(record["test/bpd"], abs=1e-5)
    for rank in (0, 1):
        losses, final = records(cluster, name, rank)
        assert sorted(losses) == list(range(1, STEPS + 1))
        assert final["test/bpd"] == record["test/bpd"]


# Lightning's own launcher is killed in the slow run (``make test-all``); the default run keeps
# one launcher's kill and both launchers' whole runs (the test above).
@pytest.mark.parametrize("launcher_case", [
    pytest.param((TORCHRUN, "torchrun"), id="torchrun"),
    pytest.param((LIGHTNING, "lightning"), id="lightning-ddp", marks=pytest.mark.slow)])
def test_sigkill_of_one_rank_stops_the_job_and_resume_repeats_the_run(cluster, launcher_case):
    launcher, name = launcher_case
    reference = f"{name}"  # the uninterrupted run of the test above
    killed = f"{name}-killed"
    run_name = [f"run_name={name}-killed"]
    assert launch(cluster, launcher, killed, run_name, kill_at=KILL_AT, timeout=180) != 0
    losses, _ = records(cluster, killed, 0)
    assert max(losses) == KILL_AT  # rank 1 died as step KILL_AT + 1 began: nothing after it
    assert launch(cluster, launcher, killed, [*run_name, "resume=auto"]) == 0
    for rank in (0, 1):
        expected, final_ref = records(cluster, reference, rank)
        resumed, final = records(cluster, killed, rank)
        assert resumed == expected, rank  # every step's loss, on both ranks, exactly
        assert final["test/bpd"] == pytest.approx(final_ref["test/bpd"], abs=1e-6)


@pytest.fixture(params=[pytest.param((TORCHRUN, "torchrun"), id="torchrun"),
                        pytest.param((LIGHTNING, "lightning"), id="lightning-ddp")])
def launcher_case(request):
    return request.param


def test_streaming_trains_and_its_test_bpd_equals_the_map_style_evaluation(cluster):
    name = "stream"
    assert launch(cluster, TORCHRUN, name, ["data.streaming=true", "data.val_size=0"]) == 0, (
        (cluster[1] / f"{name}.out").read_text())
    (run,) = list((cluster[1] / "runs" / name).iterdir())
    streamed = json.loads((run / "summary.json").read_text())
    assert streamed["num_images"] == TEST_IMAGES
    losses, _ = records(cluster, name, 0)
    assert sorted(losses) == list(range(1, STEPS + 1))
    ckpt = str(run / "checkpoints" / "last.ckpt")
    map_style = evaluate_checkpoint(ckpt, ["data.streaming=false"])["test/bpd"]
    assert map_style == pytest.approx(streamed["test/bpd"], abs=1e-5)


@pytest.mark.slow
def test_a_stop_at_an_epoch_boundary_resumes_the_run_under_ddp_with_augmentation_and_ema(
        cluster):
    """Two processes, flips drawn per image, EMA on: stopped by ``trainer.max_steps`` on the last
    batch of the first epoch, then ``resume=auto``; every step's loss on both ranks is the
    uninterrupted run's (to float tolerance)."""
    same = ["data.augment=true", "optim.ema_decay=0.9"]
    assert launch(cluster, LIGHTNING, "boundary-full", [*same, "run_name=full"]) == 0
    part = [*same, "run_name=part"]
    assert launch(cluster, LIGHTNING, "boundary-part", [*part, "trainer.max_steps=6"]) == 0
    assert launch(cluster, LIGHTNING, "boundary-part", [*part, "resume=auto"]) == 0
    for rank in (0, 1):
        expected, final_ref = records(cluster, "boundary-full", rank)
        resumed, final = records(cluster, "boundary-part", rank)
        assert sorted(resumed) == sorted(expected) == list(range(1, STEPS + 1))
        for step in expected:
            assert resumed[step] == pytest.approx(expected[step], abs=1e-5), (rank, step)
        assert final["test/bpd"] == pytest.approx(final_ref["test/bpd"], abs=1e-5)
