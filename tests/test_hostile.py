"""The command line used as a careless or hostile user would: every case ends with exit status 2
and one line naming the key or path, and nothing an earlier run wrote is changed.

Cases run in-process through :func:`glow_lightning.cli.main` (stderr captured); only the
concurrency case starts processes.
"""

import hashlib
import math
import subprocess
import sys
from pathlib import Path

import pytest

from glow_lightning.cli import main

TINY = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=32",
        "data.max_test=16", "data.batch_size=16", "trainer.max_steps=2", "trainer.max_time=null",
        "trainer.enable_progress_bar=false", "logger.kind=csv", "callbacks.enabled=false",
        "trainer.devices=1", "trainer.strategy=auto"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` → its sha256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(capsys, words: list[str], *needles: str) -> str:
    """Run the CLI; assert exit 2 and one stderr line holding every needle."""
    assert main(words) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def earlier(tmp_path_factory, digits_cache):
    """A finished tiny run ``runs/first`` and the words that made it."""
    out = tmp_path_factory.mktemp("runs")
    words = ["train", *TINY, f"data.cache_dir={digits_cache}", f"out_dir={out}",
             "run_name=first"]
    assert main(words) == 0
    return out, words


def test_rerunning_a_run_name_without_resume_is_refused_and_changes_nothing(earlier, capsys):
    out, words = earlier
    before = snapshot(out / "first")
    assert "checkpoints/last.ckpt" in before and ".lock" not in before
    refused(capsys, [*words, "trainer.max_steps=4"], str(out / "first"), "resume=auto")
    assert snapshot(out / "first") == before


@pytest.mark.parametrize("name", ["../../escape", "/tmp/abs", "a/b", "..", "${oc.env:HOME}"])
def test_run_name_must_be_one_folder_under_out_dir(tmp_path, capsys, name):
    refused(capsys, ["train", f"out_dir={tmp_path}", f"run_name={name}"], "run_name=")
    assert not list(tmp_path.iterdir())


def test_run_name_from_a_config_files_resolver_is_checked(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("run_name: ${oc.env:HOME}\n")
    refused(capsys, ["train", f"config={config}", f"out_dir={tmp_path}"], "run_name=")


def test_experiment_names_resolve_only_inside_configs(tmp_path, capsys):
    evil = tmp_path / "evil.yaml"
    evil.write_text("run_name: evil\n")
    rel = Path("../../../../../../../..") / str(evil.with_suffix("")).lstrip("/")
    refused(capsys, ["train", f"experiment={rel}"], "unknown experiment", "digits_glow")


@pytest.mark.parametrize("age_s, job, taken", [
    (5.0, "-", False),      # another host's holder touched it 5 s ago: alive
    (3600.0, "-", True),    # untouched for an hour: its holder is gone
    (5.0, "777", True),     # an earlier run of this same SLURM job (requeued, another node)
    (5.0, "778", False),    # another SLURM job's live run
])
def test_a_lock_from_another_host_is_judged_by_its_heartbeat_and_its_slurm_job(
        tmp_path, monkeypatch, age_s, job, taken):
    import os
    import time

    from glow_lightning.errors import ConfigError
    from glow_lightning.train import rundir

    monkeypatch.setenv("SLURM_JOB_ID", "777")
    lock = tmp_path / rundir.LOCK
    lock.write_text(f"node-b 4321 {job}\n")
    os.utime(lock, (time.time() - age_s,) * 2)
    try:
        if taken:
            rundir.lock_run_dir(tmp_path)
            assert lock.read_text().split()[1] == str(os.getpid())
        else:
            with pytest.raises(ConfigError, match="in use by process 4321 on node-b"):
                rundir.lock_run_dir(tmp_path)
            assert lock.read_text() == f"node-b 4321 {job}\n"  # untouched
    finally:
        rundir.release_run_dir(tmp_path)


def test_a_held_lock_is_touched_until_it_is_released(tmp_path, monkeypatch):
    import os
    import time

    from glow_lightning.train import rundir

    monkeypatch.setattr(rundir, "HEARTBEAT_S", 0.05)
    rundir.lock_run_dir(tmp_path)
    lock = tmp_path / rundir.LOCK
    os.utime(lock, (time.time() - 3600,) * 2)
    deadline = time.monotonic() + 10
    while time.time() - lock.stat().st_mtime > 60:
        assert time.monotonic() < deadline, "the heartbeat never touched the lock"
        time.sleep(0.02)
    rundir.release_run_dir(tmp_path)
    assert not lock.exists()


def test_a_live_lock_refuses_a_second_writer_and_a_stale_one_is_taken(earlier, capsys):
    out, words = earlier
    before = snapshot(out / "first")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import socket

        (out / "first" / ".lock").write_text(f"{socket.gethostname()} {holder.pid}\n")
        refused(capsys, [*words, "resume=auto"], "in use by process", ".lock")
    finally:
        holder.kill()
        holder.wait()
    assert snapshot(out / "first") == {**before, ".lock": snapshot(out / "first")[".lock"]}
    # the holder is gone: its lock is stale, the resume takes it and releases it at the end
    assert main([*words, "resume=auto", "trainer.max_steps=3"]) == 0
    assert not (out / "first" / ".lock").exists()


def test_an_out_dir_that_cannot_be_created_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    refused(capsys, ["train", f"out_dir={blocker / 'runs'}", "run_name=x"],
            f"cannot write '{blocker / 'runs' / 'x'}'", "out_dir=")


def test_a_failed_checkpoint_write_leaves_no_temporary_file(tmp_path):
    from glow_lightning.errors import StorageError
    from glow_lightning.train.checkpointing import atomic_save

    class Unpicklable:
        def __reduce__(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(StorageError, match="No space left on device"):
        atomic_save({"x": Unpicklable()}, tmp_path / "last.ckpt")
    assert list(tmp_path.iterdir()) == []


def test_two_concurrent_trainings_of_one_name_one_is_refused(tmp_path, digits_cache):
    words = [sys.executable, "-m", "glow_lightning.cli", "train", *TINY,
             f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}", "run_name=same",
             "trainer.max_steps=6"]
    procs = [subprocess.Popen(words, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser or "in use" in loser
    ckpts = sorted(p.name for p in (tmp_path / "same" / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and not [n for n in ckpts if n.endswith(".tmp")]


@pytest.mark.parametrize("word, needle", [
    ("trainer.devices=0", "trainer.devices=0 must be"),
    ("trainer.precision=bogus", "trainer.precision='bogus' must be one of"),
    ("trainer.strategy=bogus", "trainer.strategy='bogus' must be one of"),
    ("trainer.max_time=abc", "trainer.max_time='abc' must be DD:HH:MM:SS"),
    ("optim.betas=[2,3]", "optim.betas=[2.0, 3.0] must be two numbers in [0, 1)"),
    ("callbacks.num_samples=0", "callbacks.num_samples=0 must be >= 1"),
    ("callbacks.temperatures=[]", "callbacks.temperatures=[] must be a non-empty list"),
    ("callbacks.every_n_validations=0", "callbacks.every_n_validations=0 must be >= 1"),
    ("data.image_size=0", "data.image_size=0 must be >= 1"),
])
def test_every_value_is_checked_before_work_starts(tmp_path, capsys, word, needle):
    refused(capsys, ["train", word, f"out_dir={tmp_path}"], needle)
    assert not list(tmp_path.iterdir())  # refused before a run directory exists


def test_a_gpu_accelerator_without_a_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    refused(capsys, ["train", "trainer.accelerator=gpu", f"out_dir={tmp_path}"],
            "trainer.accelerator='gpu'", "where torch sees a GPU")


@pytest.mark.parametrize("words, needle", [
    (["model.architecture=realnvp", "model.permutation=invconv_lu"],
     "model.permutation conflicts with model.architecture=realnvp"),
    (["model.coupling=additive", "model.scale_fn=tanh"],
     "model.scale_fn conflicts with model.coupling=additive"),
    (["model.realnvp.blocks=2"], "model.realnvp.blocks conflicts with model.architecture=glow"),
])
def test_options_the_model_would_ignore_are_refused(tmp_path, capsys, words, needle):
    refused(capsys, ["train", *words, f"out_dir={tmp_path}"], needle)


@pytest.mark.parametrize("text, needle", [
    ("model: {steps: [unclosed\n", "config error"),
    ("model: !!python/object/apply:os.system ['echo pwned']\n", "config error"),
])
def test_malformed_or_tagged_yaml_is_one_line(tmp_path, capsys, text, needle):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    refused(capsys, ["train", f"config={config}", f"out_dir={tmp_path / 'runs'}"], needle,
            str(config))


def ckpt_of(earlier) -> str:
    return str(earlier[0] / "first" / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize("command, words, needle", [
    ("sample", ["tempreature=0.1"], "unknown argument 'tempreature'; did you mean 'temperature'"),
    ("sample", ["temperature=-1"], "temperature=-1 must be >= 0"),
    ("sample", ["n=0"], "n=0 must be >= 1"),
    ("sample", ["out={tmp}"], "must be a file path ending in .png"),
    ("sample", ["out={tmp}/grid"], "must be a file path ending in .png"),
    ("sample", ["model.steps=4"], "sample takes no config overrides ('model.steps=4')"),
    ("interpolate", ["pairs=0"], "pairs=0 must be >= 1"),
    ("interpolate", ["steps=0"], "steps=0 must be >= 2"),
    ("interpolate", ["pairs=100"], "pairs=100 needs 200 test images but the test split holds 16"),
    ("interpolate", ["pair=2"], "did you mean 'pairs'"),
    ("test", ["data.n_bits=5"], "data.n_bits: 8 -> 5: contradicts the checkpoint"),
    ("test", ["model.steps=4"], "model.steps: 1 -> 4: contradicts the checkpoint"),
    ("test", ["cpkt=x"], "did you mean 'ckpt'"),
])
def test_command_arguments_are_checked(earlier, tmp_path, capsys, digits_cache, command, words,
                                       needle):
    words = [w.format(tmp=tmp_path) for w in words]
    cache = [f"data.cache_dir={digits_cache}"] if command != "sample" else []
    refused(capsys, [command, f"ckpt={ckpt_of(earlier)}", *cache, *words], needle)


def test_ckpt_naming_a_directory_says_so(earlier, capsys):
    folder = str(earlier[0] / "first" / "checkpoints")
    refused(capsys, ["sample", f"ckpt={folder}"], f"ckpt='{folder}' is a directory")


def test_resume_with_a_changed_model_or_data_is_refused_unless_allowed(earlier, capsys):
    out, words = earlier
    before = snapshot(out / "first")
    err = refused(capsys, [*words, "resume=auto", "model.scale_fn=sigmoid",
                           "model.affine_clamp=0", "data.n_bits=5"],
                  "model.scale_fn: softclamp -> sigmoid", "data.n_bits: 8 -> 5",
                  "resume_allow=")
    assert err.endswith("resume_allow=data.n_bits,model.affine_clamp,model.scale_fn")
    refused(capsys, [*words, "resume=auto", "optim.lr=0.01"], "optim.lr: 0.004 -> 0.01")
    assert snapshot(out / "first") == before
    # a deliberate change, allowed by name, continues the run
    import torch

    last = out / "first" / "checkpoints" / "last.ckpt"
    step = torch.load(last, weights_only=True)["global_step"] + 1
    assert main([*words, "resume=auto", "optim.lr=0.01", "resume_allow=optim.lr",
                 f"trainer.max_steps={step}"]) == 0
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == step  # and the new rate took effect, not the restored one:
    assert state["lr_schedulers"][0]["base_lrs"] == [0.01]
    assert state["optimizer_states"][0]["param_groups"][0]["initial_lr"] == 0.01


@pytest.mark.parametrize("lr,ema", [("10", "0"), ("1e3", "0.999")])
def test_a_blow_up_names_the_initial_weights_which_test_finite(tmp_path, capsys, digits_cache,
                                                                lr, ema):
    """At these rates the first applied update already ruins the weights (the next loss is
    NaN): the guard names ``init.ckpt``, the weights before that update (with EMA on, its
    average is those weights too), whose test bits/dim are finite; ``test`` on whatever was
    written after it exits 2."""
    words = ["train", *TINY, f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}",
             "run_name=blow", "checkpoint.every_n_steps=1", "optim.max_skipped_in_row=2",
             "trainer.max_steps=8", f"optim.lr={lr}", "optim.warmup_steps=0",
             f"optim.ema_decay={ema}", "callbacks.enabled=true", "callbacks.num_samples=4",
             "callbacks.interpolation_pairs=2", "callbacks.every_n_steps=1"]
    folder = tmp_path / "blow" / "checkpoints"
    refused(capsys, words, "training stopped at step",
            f"last good checkpoint: '{folder / 'init.ckpt'}'", "optim.lr")
    assert main(["test", f"ckpt={folder / 'init.ckpt'}", f"data.cache_dir={digits_cache}"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("test/bpd = "))
    bpd = float(line.removeprefix("test/bpd = "))
    assert math.isfinite(bpd) and 4.0 < bpd < 12.0, line  # an untrained flow, not a broken one
    # lr=10: the step-1 weights are finite (written) but evaluate to inf; lr=1e3: they are not
    # finite, so no step file was written at all
    written = sorted(folder.glob("step*.ckpt")) + sorted(folder.glob("last.ckpt"))
    assert bool(written) == (lr == "10"), written
    for ckpt in written:
        refused(capsys, ["test", f"ckpt={ckpt}", f"data.cache_dir={digits_cache}"],
                f"checkpoint '{ckpt}' evaluates to test/bpd=", "not usable")


def newest_step_file(folder: Path) -> int:
    """The highest step among ``folder``'s step files (0 if none): only the newest three are
    kept, so a fast run removes step 2's file soon after writing it."""
    return max((int(p.stem.removeprefix("step")) for p in folder.glob("step*.ckpt")), default=0)


def signal_after_step_two(proc: subprocess.Popen, folder: Path, signum: int) -> str:
    """Send ``signum`` to a training once a step file of step 2 or later exists; assert it
    exits with 128 + ``signum``; its last stderr line."""
    import time

    deadline = time.monotonic() + 240
    while newest_step_file(folder) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    return err.strip().splitlines()[-1]


def test_sigterm_checkpoints_prints_how_to_resume_and_exits_143(tmp_path, digits_cache):
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "glow_lightning.cli", "train", *TINY, "trainer.max_steps=100000",
         "checkpoint.every_n_steps=1", f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}",
         "run_name=term"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "term" / "checkpoints"
    line = signal_after_step_two(proc, folder, signal.SIGTERM)
    assert line.startswith("error: training interrupted by SIGTERM at step ")
    assert f"checkpoint '{folder / 'last.ckpt'}'" in line and "run_name=term resume=auto" in line
    assert not (tmp_path / "term" / ".lock").exists()
    assert not list(folder.glob("*.tmp"))


SLURM_TASK = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "glow", "SLURM_NTASKS": "1",
              "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_PROCID": "0",
              "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}


def test_slurm_usr1_checkpoints_requeues_the_job_and_the_requeued_script_continues(
        tmp_path, digits_cache):
    """``#SBATCH --signal=USR1@120`` under SLURM: stop after the batch, ``last.ckpt``, ``scontrol
    requeue <job>`` (a stand-in ``scontrol`` on PATH records the call), exit 138; the job's
    script run again (``resume=auto``) continues from that step."""
    import os
    import signal

    import torch

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'scontrol.log'}\n")
    scontrol.chmod(0o755)
    env = {**os.environ, **SLURM_TASK, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    words = [sys.executable, "-m", "glow_lightning.cli", "train", *TINY,
             "checkpoint.every_n_steps=1", f"data.cache_dir={digits_cache}",
             f"out_dir={tmp_path}", "run_name=slurm", "resume=auto"]
    proc = subprocess.Popen([*words, "trainer.max_steps=100000"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "slurm" / "checkpoints"
    line = signal_after_step_two(proc, folder, signal.SIGUSR1)
    assert line.startswith("error: training interrupted by SIGUSR1 at step "), line
    assert "job 4242 requeued" in line and "run_name=slurm resume=auto" in line, line
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    assert not list(tmp_path.glob("slurm/hpc_ckpt*"))  # no checkpoint from inside the handler
    step = torch.load(folder / "last.ckpt", weights_only=True)["global_step"]
    done = subprocess.run([*words, f"trainer.max_steps={step + 2}"], env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == step + 2


@pytest.mark.parametrize("word, needle", [
    ("budget_steps=-1", "budget_steps=-1 must be >= 1"),
    ("budget_minutes=0", "budget_minutes=0.0 must be > 0"),
])
def test_an_ablation_budget_is_checked(tmp_path, capsys, word, needle):
    refused(capsys, ["ablate", "cells=realnvp", "seeds=1", word, f"out={tmp_path / 'a'}"],
            needle)
    assert not (tmp_path / "a").exists()


def test_a_checkpoint_whose_weights_do_not_fit_its_settings_is_one_line(earlier, tmp_path,
                                                                        capsys):
    import torch

    good = torch.load(ckpt_of(earlier), weights_only=True)
    wrong = dict(good, state_dict={k: v for k, v in good["state_dict"].items()
                                   if "level1" not in k and ".1." not in k})
    for name, content in [("wrong.ckpt", wrong), ("empty.ckpt", {"hyper_parameters": {}})]:
        torch.save(content, tmp_path / name)
        err = refused(capsys, ["sample", f"ckpt={tmp_path / name}", f"out={tmp_path / 'g.png'}"],
                      f"checkpoint '{tmp_path / name}'")
        assert len(err) < 400  # one line, not a dump of every key
    assert not (tmp_path / "g.png").exists()


def test_the_grey_image_hints_key_exists(tmp_path):
    from glow_lightning.config import load_config

    assert load_config(["data.convert_mode=true"]).data.convert_mode is True


def test_a_plain_hostile_pickle_is_called_unsafe_not_truncated(tmp_path, capsys):
    import os
    import pickle

    class Hostile:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps(Hostile()))
    refused(capsys, ["sample", f"ckpt={path}", f"out={tmp_path / 'g.png'}"],
            "carries pickled objects", "system", "could run code")
    assert not (tmp_path / "ran").exists()


def test_a_source_that_is_neither_a_path_nor_a_hub_id_is_one_line(tmp_path, capsys):
    refused(capsys, ["train", "data.source=foo/../../bar", f"out_dir={tmp_path}"],
            "data source 'foo/../../bar' does not exist", "data.source=")


def test_online_logging_without_an_api_key_is_one_line(tmp_path, capsys, monkeypatch,
                                                       digits_cache):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    refused(capsys, ["train", *TINY, "logger.kind=wandb", "logger.mode=online",
                     f"data.cache_dir={digits_cache}", f"out_dir={tmp_path / 'runs'}"],
            "logger.mode=online needs a W&B API key")
