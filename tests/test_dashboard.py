"""What the W&B run holds, read back from the offline ``.wandb`` file (no mocks): media at every
validation the trainer runs, step axes and summaries, one copy of the config, per-level bits
that sum to the bpd; and the per-level decomposition against an independent computation."""

from __future__ import annotations

import json
import math

import pytest
import torch

from glow_lightning.config import load_config
from glow_lightning.flows import Split, build_flow
from glow_lightning.ops import bits_per_dim, level_bits
from glow_lightning.train.run import train
from tests.flow_utils import brute_logdet, randomize
from tests.wandb_reader import (
    find_run_dir,
    isolate_wandb,
    read_config,
    read_history,
    read_metric_definitions,
    read_summary,
    summary_record,
)

# 64 digits (80 less 16 held out for validation) in batches of 16: 4 steps an epoch, 6 epochs;
# validation every 2nd epoch (after epochs 1, 3, 5: steps 8, 16, 24), so a schedule on
# current_epoch % 2 == 0 would never fire
RUN = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=80",
       "data.val_size=16",
       "data.max_test=16", "data.batch_size=16", "trainer.max_epochs=6", "trainer.max_steps=-1",
       "trainer.budget_minutes=null", "trainer.max_time=null",
       "trainer.check_val_every_n_epoch=2", "trainer.enable_progress_bar=false",
       "trainer.num_threads=1", "callbacks.num_samples=4", "callbacks.interpolation_pairs=2",
       "run_name=dash"]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, digits_cache):
    root = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, root / "wandb_env")
        train(load_config([*RUN, f"out_dir={root}", f"data.cache_dir={digits_cache}"]))
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
    assert defined["val/bpd"].summary.min and defined["test/*"].summary.last
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
