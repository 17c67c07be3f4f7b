"""The callbacks on a real (tiny) training run: PNGs on disk, the offline W&B run read back."""

import json
import math
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import wandb
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.strategies import DDPStrategy
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from glow_lightning.callbacks import (
    Interpolations,
    ReconstructionCheck,
    RunSummary,
    SampleGrid,
    build_callbacks,
)
from glow_lightning.config import CallbackConfig
from glow_lightning.grids import make_grid
from glow_lightning.ops import bins_to_float, postprocess
from glow_lightning.train.module import GlowModule
from tests.wandb_reader import (
    find_run_dir,
    isolate_wandb,
    media_file,
    read_history,
    read_records,
    read_summary,
    read_summary_leet,
    wandb_cli,
)

SHAPE = (1, 8, 8)
N_TEST = 20
TEMPERATURES = CallbackConfig().temperatures


class TinyImages(L.LightningDataModule):
    """Random 8-bit images; batches are ``(bins, labels, index)`` like the real datamodules."""

    def __init__(self, n_train: int = 32, n_test: int = N_TEST, batch_size: int = 8) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.train = torch.randint(0, 256, (n_train, *SHAPE), generator=gen).to(torch.uint8)
        self.test = torch.randint(0, 256, (n_test, *SHAPE), generator=gen).to(torch.uint8)
        self.test_labels = torch.arange(n_test) % 10
        self.batch_size = batch_size

    def _loader(self, bins: torch.Tensor) -> DataLoader:
        labels = torch.arange(len(bins)) % 10
        return DataLoader(TensorDataset(bins, labels, torch.arange(len(bins))),
                          batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.test)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test)

    def example_images(self, n: int, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
        bins = self.test if split == "test" else self.train
        return bins[:n], self.test_labels[:n]


def tiny_module() -> GlowModule:
    return GlowModule(SHAPE, dict(levels=2, steps=1, hidden_channels=8))


def trainer(root: Path, logger, callbacks, **overrides) -> L.Trainer:
    kwargs = dict(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=2,
                  limit_val_batches=1, enable_checkpointing=False, default_root_dir=root,
                  logger=logger, callbacks=callbacks, enable_progress_bar=False,
                  enable_model_summary=False, log_every_n_steps=1)
    return L.Trainer(**{**kwargs, **overrides})


def grid_side(n_cells: int, size: int = 8, padding: int = 2) -> int:
    return n_cells * (size + padding) + padding


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def cells(grid: np.ndarray, size: int = 8, padding: int = 2) -> np.ndarray:
    """The image cells of a greyscale grid, padding removed: (rows, cols, size, size)."""
    step = size + padding
    rows, cols = (grid.shape[0] - padding) // step, (grid.shape[1] - padding) // step
    return np.array([[grid[padding + r * step : padding + r * step + size,
                           padding + c * step : padding + c * step + size]
                      for c in range(cols)] for r in range(rows)])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One fit + test with every callback and an offline WandbLogger, then the run is closed."""
    root = tmp_path_factory.mktemp("callbacks_run")
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, root / "wandb_env")
        torch.manual_seed(0)
        module, data = tiny_module(), TinyImages()
        callbacks = build_callbacks(CallbackConfig())
        logger = WandbLogger(save_dir=root, offline=True, project="t")
        t = trainer(root, logger, callbacks)
        try:
            t.fit(module, datamodule=data)
            fit_metrics = dict(t.callback_metrics)
            results = t.test(module, datamodule=data, verbose=False)
        finally:
            wandb.finish()
        yield SimpleNamespace(root=root, module=module, data=data, results=results,
                              fit_metrics=fit_metrics,
                              samples=callbacks[0], interp=callbacks[1],
                              run_dir=find_run_dir(root / "wandb"))
        wandb.finish()


def test_summary_holds_the_test_bpd_returned_by_trainer_test(run):
    returned = run.results[0]["test/bpd"]
    summary = read_summary(run.run_dir)
    assert abs(summary["test/bpd"] - returned) < 1e-6
    saved = json.loads((run.root / "summary.json").read_text())
    assert abs(saved["test/bpd"] - returned) < 1e-6 and saved["num_images"] == N_TEST
    if wandb_cli() is not None:  # the official reader agrees with ours
        assert abs(read_summary_leet(run.run_dir)["test/bpd"] - returned) < 1e-6


def test_test_bpd_is_written_to_the_summary_after_it_was_logged(run):
    """Lightning logs ``test/bpd`` as a metric; the callback then sets the summary itself."""
    order = []
    for record in read_records(run.run_dir):
        kind = record.WhichOneof("record_type")
        items = (record.history.item if kind == "history"
                 else record.summary.update if kind == "summary" else [])
        if any((list(i.nested_key) or [i.key])[0] == "test/bpd" for i in items):
            order.append(kind)
    assert "history" in order
    assert "summary" in order[order.index("history") + 1 :]


def test_sample_grids_on_disk_and_in_wandb(run):
    summary = read_summary(run.run_dir)
    side = grid_side(8)  # 64 samples → 8 × 8
    for t in TEMPERATURES:
        local = run.root / "media" / "samples" / f"step0000002_T{t:.2f}.png"
        remote = media_file(run.run_dir, summary[f"samples/T{t:.2f}"])
        assert remote.parent == run.run_dir / "files" / "media" / "images" / "samples"
        pixels = read_png(local)
        assert pixels.shape == (side, side)
        np.testing.assert_array_equal(read_png(remote), pixels)
        assert summary[f"samples/nonfinite_T{t:.2f}"] == 0
    assert summary["samples/nonfinite"] == 0
    # With shared noise, sample i moves away from the mode as T grows; at T=1 samples differ.
    hot = cells(read_png(run.root / "media" / "samples" / "step0000002_T1.00.png"))
    assert hot.reshape(64, -1).std(axis=0).mean() > 1.0
    rows = read_png(run.root / "media" / "samples" / "step0000002_temperatures.png")
    assert rows.shape == (grid_side(len(TEMPERATURES)), side)
    # Validation at the last step already drew these weights: no duplicate at train end.
    assert sorted(p.name for p in (run.root / "media" / "samples").iterdir()) == sorted(
        [f"step0000002_T{t:.2f}.png" for t in TEMPERATURES] + ["step0000002_temperatures.png"])


def test_interpolation_grid_on_disk_and_in_wandb(run):
    local = run.root / "media" / "interpolations" / "step0000002.png"
    remote = media_file(run.run_dir, read_summary(run.run_dir)["interpolations"])
    pixels = read_png(local)
    assert pixels.shape == (grid_side(4), grid_side(8))  # 4 pairs × 8 steps
    np.testing.assert_array_equal(read_png(remote), pixels)
    assert cells(pixels).std() > 1.0
    # The end columns show the real images (reconstructed, then rounded to 8 bits).
    first = run.data.test[:8:2, 0].numpy()
    np.testing.assert_array_equal(cells(pixels)[:, 0], first)


def test_grids_use_fixed_noise(run):
    rng = torch.get_rng_state()
    for t in (0.0, 1.0):
        a, b = run.samples.samples(run.module, t), run.samples.samples(run.module, t)
        assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), rng)  # the global RNG is left untouched
    zero = make_grid(postprocess(run.samples.samples(run.module, 0.0), 8), nrow=8)[..., 0]
    np.testing.assert_array_equal(
        read_png(run.root / "media" / "samples" / "step0000002_T0.00.png"), zero)
    other = SampleGrid(seed=99).samples(run.module, 1.0)
    assert not torch.equal(other, run.samples.samples(run.module, 1.0))


def test_interpolation_endpoints_are_reconstructions(run):
    bins, _ = run.data.example_images(8)
    x = bins_to_float(bins, 8) + 0.5 / 256
    path = run.interp.interpolate(run.module, x).view(4, 8, *SHAPE)
    torch.testing.assert_close(path[:, 0], x[0::2], atol=1e-4, rtol=0)
    torch.testing.assert_close(path[:, -1], x[1::2], atol=1e-4, rtol=0)
    assert (path[:, 4] - x[0::2]).abs().max() > 1e-2  # the middle is neither end


def test_reconstruction_error_is_logged(run):
    error = float(run.fit_metrics["val/recon_error"])
    assert 0.0 <= error < 1e-3
    logged = [row["val/recon_error"] for row in read_history(run.run_dir)
              if "val/recon_error" in row]
    assert logged and abs(logged[-1] - error) < 1e-9


def test_train_bpd_is_logged_per_step_and_per_epoch(run):
    rows = read_history(run.run_dir)
    steps = [row["train/bpd_step"] for row in rows if "train/bpd_step" in row]
    epochs = [row["train/bpd_epoch"] for row in rows if "train/bpd_epoch" in row]
    assert steps and epochs
    assert all(math.isfinite(v) and v > 0 for v in steps + epochs)


def test_pngs_without_wandb(tmp_path):
    module, data = tiny_module(), TinyImages()
    callbacks = [SampleGrid(temperatures=(0.5,), num_samples=6, every_n_validations=1),
                 Interpolations(pairs=1, steps=3), RunSummary()]
    t = trainer(tmp_path, CSVLogger(tmp_path), callbacks, max_epochs=2)
    t.fit(module, datamodule=data)
    t.test(module, datamodule=data, verbose=False)
    for step in (2, 4):  # the validation of each epoch (2 batches an epoch)
        grid = read_png(tmp_path / "media" / "samples" / f"step{step:07d}_T0.50.png")
        assert grid.shape == (grid_side(2), grid_side(3))  # 6 samples → 3 a row
        assert read_png(tmp_path / "media" / "interpolations" / f"step{step:07d}.png").shape == (
            grid_side(1), grid_side(3))
    metrics = (Path(t.logger.log_dir) / "metrics.csv").read_text()
    assert "samples/nonfinite_T0.50" in metrics
    assert json.loads((tmp_path / "summary.json").read_text())["num_images"] == N_TEST


def test_callbacks_leave_an_uninitialised_flow_alone(tmp_path):
    module = tiny_module()
    t = L.Trainer(default_root_dir=tmp_path, logger=False, accelerator="cpu", devices=1)
    assert SampleGrid(num_samples=4).log_grids(t, module) == []
    Interpolations().log_grid(t, module)
    assert module.needs_data_init()
    assert not (tmp_path / "media").exists()


def test_under_ddp_media_once_and_counts_over_ranks(tmp_path):
    """Two CPU processes: media and the json from rank zero only, no collective mismatch."""
    module, data = tiny_module(), TinyImages()
    callbacks = [SampleGrid(temperatures=(1.0,), num_samples=4), Interpolations(pairs=1, steps=3),
                 ReconstructionCheck(num_images=4), RunSummary()]
    strategy = DDPStrategy(start_method="fork", timeout=timedelta(seconds=60))
    t = trainer(tmp_path, CSVLogger(tmp_path), callbacks, devices=2, strategy=strategy)
    t.fit(module, datamodule=data)
    assert "val/recon_error" in t.callback_metrics
    results = t.test(module, datamodule=data, verbose=False)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["num_images"] == N_TEST  # 10 images on each of the two ranks
    assert abs(saved["test/bpd"] - results[0]["test/bpd"]) < 1e-6
    assert sorted(p.name for p in (tmp_path / "media").rglob("*.png")) == [
        "step0000002.png", "step0000002_T1.00.png", "step0000002_temperatures.png"]
