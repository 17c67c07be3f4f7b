"""What the W&B run holds, read back from the offline ``.wandb`` file (no mocks): media at every
validation the trainer runs, step axes and summaries, one copy of the config, per-level bits
that sum to the bpd; and the per-level decomposition against an independent computation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from glow_lightning.config import load_config
from glow_lightning.flows import Split, build_flow
from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.ops import bits_per_dim, level_bits
from glow_lightning.train.run import train
from tests.flow_utils import brute_logdet, randomize
from tests.wandb_reader import (
    find_run_dir,
    isolate_wandb,
    read_config,
    read_history,
    read_metric_definitions,
    read_run,
    read_summary,
    summary_record,
)

# 64 digits (16 more held out for validation) in batches of 16: 4 steps an epoch, 6 epochs;
# validation every 2nd epoch (after epochs 1, 3, 5: steps 8, 16, 24), so a schedule on
# current_epoch % 2 == 0 would never fire
RUN = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=64",
       "data.val_size=16",
       "data.max_test=16", "data.batch_size=16", "trainer.max_epochs=6", "trainer.max_steps=-1",
       "trainer.budget_minutes=null", "trainer.max_time=null",
       "trainer.check_val_every_n_epoch=2", "trainer.enable_progress_bar=false",
       "trainer.num_threads=1", "callbacks.num_samples=4", "callbacks.interpolation_pairs=2",
       "trainer.log_every_n_steps=1", "notes=dashboard test", "run_name=dash"]
SKIPPED = 6  # the step the guard skips (ForceSkip)


class ForceSkip(Callback):
    """Makes the batch after ``step`` a huge but finite loss (an ActNorm bias moved far off)
    whose gradients are not finite, so the guard skips it; restores the bias afterwards."""

    def __init__(self, step: int) -> None:
        self.step, self.saved = step, None

    def _bias(self, pl_module):
        return next(m for m in pl_module.flow.modules() if isinstance(m, ActNorm)).bias

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.saved = self._bias(pl_module).detach().clone()
            self._bias(pl_module).data += 100.0

    def on_after_backward(self, trainer, pl_module):
        if self.saved is not None:
            self._bias(pl_module).grad.fill_(math.inf)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.saved is not None:
            self._bias(pl_module).data.copy_(self.saved)
            self.saved = None


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, digits_cache):
    root = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, root / "wandb_env")
        train(load_config([*RUN, f"out_dir={root}", f"data.cache_dir={digits_cache}"]),
              extra_callbacks=[ForceSkip(SKIPPED - 1)])
    run_dir = root / "dash"
    return run_dir, find_run_dir(run_dir)


def test_grids_at_every_validation_the_trainer_runs(dashboard):
    run_dir, wandb_dir = dashboard
    rows = read_history(wandb_dir)
    drawn = sorted(p.name for p in run_dir.glob("media/samples/*T0.70.png"))
    for key in ("samples/T0.70", "samples/temperatures", "interpolations"):
        steps = sorted({r["trainer/global_step"] for r in rows if key in r})
        assert steps == [8, 16, 24], (key, drawn)  # three distinct steps: three slider frames


def test_metrics_have_step_axes_and_summaries(dashboard):
    _, wandb_dir = dashboard
    defined = read_metric_definitions(wandb_dir)
    assert defined["val/bpd"].step_metric == "trainer/global_step"
    assert defined["val/bpd"].summary.min
    assert defined["test/*"].step_metric == "trainer/global_step"
    assert defined["train/*"].step_metric == "trainer/global_step"
    assert "epoch" in defined
    history = [r["val/bpd"] for r in read_history(wandb_dir) if "val/bpd" in r]
    assert len(history) == 3
    assert summary_record(wandb_dir, "val/bpd") == {"min": pytest.approx(min(history))}
    summary = read_summary(wandb_dir)
    assert summary["test/bpd_worst"] > summary["test/bpd"] > 0  # one image above the mean
    worst = [r["val/bpd_worst"] for r in read_history(wandb_dir) if "val/bpd_worst" in r]
    assert len(worst) == 3 and all(w > b for w, b in zip(worst, history, strict=True))


def test_one_copy_of_the_config_with_groupable_keys(dashboard):
    _, wandb_dir = dashboard
    config = read_config(wandb_dir)
    assert "experiment" not in config and "optim/lr" not in config  # no second copy
    assert {"model", "data", "optim", "trainer", "seed", "params", "version"} <= config.keys()
    assert config["model"]["coupling"] == "affine" and config["data"]["name"] == "digits"
    assert config["model"]["architecture"] == "glow" and config["seed"] == 0
    assert config["params"] == sum(p.numel() for p in build_flow(
        (1, 32, 32), levels=2, steps=1, hidden_channels=8).parameters())


def test_training_health_is_on_the_dashboard(dashboard):
    """Learning rate (warmup from 0), gradient norm before clipping, clip fraction, step time and
    images/s, per optimiser step."""
    _, wandb_dir = dashboard
    rows = read_history(wandb_dir)
    lr = [r["train/lr"] for r in rows if "train/lr" in r]
    assert lr[0] < lr[-1] and len(lr) >= 20  # the warmup ramps it up
    norms = [r["train/grad_norm"] for r in rows if "train/grad_norm" in r]
    assert len(norms) >= 20 and all(math.isfinite(n) and n > 0 for n in norms)
    clipped = [r["train/clip_fraction"] for r in rows if "train/clip_fraction" in r]
    assert clipped and all(0.0 <= c <= 1.0 for c in clipped)
    speed = [r for r in rows if "train/step_time" in r]
    assert len(speed) >= 15
    for r in speed:  # one process: the total is this process's rate
        assert r["train/images_per_s"] == pytest.approx(16 / r["train/step_time"], rel=1e-4)
        assert r["train/images_per_s_total"] == pytest.approx(r["train/images_per_s"])
    assert not any("train/loss" in r for r in rows)  # unconditional: it is train/bpd_step


def test_history_steps_never_go_backwards(dashboard):
    _, wandb_dir = dashboard
    steps = [r["trainer/global_step"] for r in read_history(wandb_dir)]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one row per step
    assert [r["_step"] for r in read_history(wandb_dir)] == steps  # the media slider's axis


def test_every_key_of_a_validation_at_the_checkpoints_step(dashboard):
    run_dir, wandb_dir = dashboard
    keys = ("val/bpd", "val/bpd_worst", "val/bits_level0", "val/recon_error", "samples/T0.70",
            "samples/temperatures", "interpolations", "val/bits_per_level",
            "val/bits_per_level_chart_table", "val/bits_per_level_plot")
    rows = [r for r in read_history(wandb_dir) if any(k in r for k in keys)]
    assert [r["trainer/global_step"] for r in rows] == [8, 16, 24]
    for r in rows:
        assert set(keys) <= r.keys(), (r["trainer/global_step"], set(keys) - r.keys())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["val/last"]["step"] == summary["steps"] == rows[-1]["trainer/global_step"]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in run_dir.glob("media/samples/*_temperatures.png")) == [
        f"step{s:07d}_temperatures.png" for s in (8, 16, 24)]


def test_tables_and_images_stay_references_in_the_summary(dashboard):
    _, wandb_dir = dashboard
    summary = read_summary(wandb_dir)
    for stage in ("val", "test"):
        for key in (f"{stage}/bits_per_level", f"{stage}/bits_per_level_chart_table"):
            assert summary[key]["_type"] == "table-file", (key, summary[key])
            assert isinstance(summary[key]["path"], str) and summary[key]["ncols"] == 4
        plot = summary[f"{stage}/bits_per_level_plot"]
        assert plot["_type"] == "image-file" and plot["path"].endswith(".png")
    assert isinstance(summary["test/bpd"], float)


def test_a_skipped_step_is_an_event_and_stays_out_of_the_epoch_mean(dashboard):
    _, wandb_dir = dashboard
    rows = read_history(wandb_dir)
    (skipped,) = [r for r in rows if r["trainer/global_step"] == SKIPPED]
    assert skipped["train/bpd_step"] > 1000  # the forced batch: huge, finite
    assert [r["trainer/global_step"] for r in rows if r.get("train/skipped")] == [SKIPPED]
    assert skipped["train/skipped_steps"] == 1
    epoch = [r["train/bpd_epoch"] for r in rows if "train/bpd_epoch" in r]
    assert len(epoch) == 6 and all(math.isfinite(v) and v < 20 for v in epoch), epoch
    assert read_summary(wandb_dir)["train/skipped_at"] == [SKIPPED]


def test_the_run_says_what_ran(dashboard):
    run_dir, wandb_dir = dashboard
    run = read_run(wandb_dir)
    assert {"data:digits", "architecture:glow", "coupling:affine",
            "permutation:invconv_lu"} <= set(run.tags)
    assert run.run_group == "digits_glow" and run.job_type == "train"
    assert run.notes == "dashboard test"
    config = read_config(wandb_dir)
    assert config["planned_steps"] == 24 and "decay_end_step" in config
    assert "realnvp" not in config["model"]  # a Glow run: no RealNVP settings
    assert json.loads((run_dir / "summary.json").read_text()).get("planned_steps") is None
    assert "realnvp" in (run_dir / "config.yaml").read_text()  # the resumable copy stays whole


def test_the_data_identity_is_in_the_config_and_the_summary(dashboard):
    """Which data, which version, which split sizes: read back from the .wandb file."""
    run_dir, wandb_dir = dashboard
    identity = read_config(wandb_dir)["data_identity"]
    assert identity == json.loads((run_dir / "summary.json").read_text())["data"]
    assert (identity["dataset"], identity["source"]["kind"], identity["test_split"]) == (
        "digits", "embedded", "test")
    splits = identity["splits"]
    assert not splits["val_is_test"] and splits["val"] > 0 and splits["test"] > 0
    assert len(identity["source"]["arrays_sha256"]) == 64


def test_per_level_bits_sum_to_the_bpd(dashboard):
    run_dir, wandb_dir = dashboard
    rows = [r for r in read_history(wandb_dir) if "val/bits_level0" in r]
    assert len(rows) == 3
    for r in rows:
        total = r["val/bits_level0"] + r["val/bits_level1"] + r["val/bits_quantisation"]
        assert total == pytest.approx(r["val/bpd"], abs=1e-5)
        for i in (0, 1):
            parts = r[f"val/bits_level{i}_prior"] + r[f"val/bits_level{i}_logdet"]
            assert parts == pytest.approx(r[f"val/bits_level{i}"], abs=1e-6)
    table = [r["val/bits_per_level"] for r in read_history(wandb_dir) if "val/bits_per_level" in r]
    assert len(table) == 3 and table[-1]["ncols"] == 4
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["val/bpd_best"] == pytest.approx(min(r["val/bpd"] for r in rows))
    assert summary["num_images"] == 16 and math.isfinite(summary["test/bpd"])
    assert sorted(p.name for p in (run_dir / "media" / "levels").iterdir()) == [
        "test_step0000024.png", "val_step0000008.png", "val_step0000016.png",
        "val_step0000024.png"]


def _gaussian(z: torch.Tensor, mean: torch.Tensor, logs: torch.Tensor) -> torch.Tensor:
    """Σ log N(z; mean, e^{2 logs}) per sample, written out."""
    var = torch.exp(2 * logs)
    return (-0.5 * math.log(2 * math.pi) - logs - (z - mean) ** 2 / (2 * var)).flatten(1).sum(1)


def test_level_decomposition_matches_an_independent_computation():
    """Float64, tiny Glow with learned split and top priors: each level's log-det by a
    brute-force Jacobian of that level's flow, each prior term by the Gaussian formula on the
    latent ``encode`` returns."""
    torch.manual_seed(0)
    flow = randomize(build_flow((2, 8, 8), levels=3, steps=1, hidden_channels=4).double(), 0.1)
    x = torch.rand(2, 2, 8, 8, dtype=torch.float64) - 0.5
    out = flow(x)
    logdets, priors, h = [], [], x
    for level, split in zip(flow.levels, flow.splits, strict=True):
        logdets.append(brute_logdet(lambda v, lv=level: lv(v)[0].flatten(1), h))
        h = level(h)[0]
        if isinstance(split, Split):
            kept, latent = h[:, : split.kept], h[:, split.kept :]
            priors.append(_gaussian(latent, *split.prior.params(kept)))
            h = kept
    priors.append(_gaussian(h, *flow.top_prior.params(2, None, h)))
    latents = flow.encode(x)
    assert torch.allclose(latents[-1], h)
    expected = level_bits(logdets, priors, flow.num_dims, 8)
    got = level_bits(out.logdets, out.priors, flow.num_dims, 8)
    for key, value in expected.items():
        assert torch.allclose(got[key], value, atol=1e-10), key
    total = sum(got[f"bits_level{i}"] for i in range(3)) + got["bits_quantisation"]
    assert torch.allclose(total, bits_per_dim(out.log_prob, flow.num_dims, 8), atol=1e-12)


def test_checkpoints_become_artifacts_with_last_and_best_aliases(tmp_path, monkeypatch):
    """The artifact callback (on when online) logs last.ckpt and best.ckpt once each, as
    versions of the run's model artifact with the aliases last/latest and best; run offline here
    and read back from the run's own log."""
    import lightning as L
    from lightning.pytorch.loggers import WandbLogger

    from glow_lightning.train.checkpointing import StepCheckpoint, best_checkpoint
    from glow_lightning.train.wandb_run import CheckpointArtifacts
    from tests.test_callbacks import TinyImages, tiny_module
    from tests.wandb_reader import read_records

    isolate_wandb(monkeypatch, tmp_path / "wandb_env")
    folder = tmp_path / "checkpoints"
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="t")
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=4, limit_val_batches=1,
                        default_root_dir=tmp_path, logger=logger, enable_progress_bar=False,
                        callbacks=[StepCheckpoint(folder, 2), best_checkpoint(folder),
                                   CheckpointArtifacts(folder)])
    import wandb

    try:
        trainer.fit(tiny_module(), datamodule=TinyImages())
    finally:
        wandb.finish()
    artifacts = [r.artifact for r in read_records(find_run_dir(tmp_path))
                 if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "model"]
    assert [sorted(a.aliases) for a in artifacts] == [["best", "latest"], ["last", "latest"]]
    files = {entry.path for a in artifacts for entry in a.manifest.contents}
    assert files == {"last.ckpt", "best.ckpt"}


def test_a_time_budgets_plan_replaces_the_step_bound_in_the_config(tmp_path, monkeypatch):
    """A budget far below two steps' time plans the end at its first measurement (step 2):
    the config and summary say 2 planned steps, where the trainer's bound was 6."""
    import lightning as L
    from lightning.pytorch.loggers import WandbLogger

    from glow_lightning.train.budget import TimeBudget
    from glow_lightning.train.wandb_run import StepWandbLogger, WandbSetup
    from tests.test_callbacks import TinyImages, tiny_module

    isolate_wandb(monkeypatch, tmp_path / "wandb_env")
    logger = StepWandbLogger(save_dir=str(tmp_path), offline=True, project="t")
    assert isinstance(logger, WandbLogger)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=6, limit_val_batches=1,
                        default_root_dir=tmp_path, logger=logger, enable_progress_bar=False,
                        enable_checkpointing=False,
                        callbacks=[TimeBudget(1e-6, first_plan=2), WandbSetup()])
    import wandb

    try:
        trainer.fit(tiny_module(), datamodule=TinyImages(n_train=64))
    finally:
        wandb.finish()
    assert trainer.global_step == 2
    run_dir = find_run_dir(tmp_path)
    assert read_config(run_dir)["planned_steps"] == 2
    assert read_summary(run_dir)["planned_steps"] == 2
