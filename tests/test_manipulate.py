"""Attribute manipulation: the mean-latent maths, the command on a small trained model (strength 0
gives the reconstruction), and the callback writing its grid to disk and to an offline W&B run."""

import numpy as np
import pytest
import torch
from PIL import Image

from glow_lightning.callbacks import AttributeManipulation
from glow_lightning.commands.checkpoint import load_module
from glow_lightning.commands.manipulate import (
    manipulate_checkpoint,
    parse_attribute,
    parse_strengths,
)
from glow_lightning.config import load_config
from glow_lightning.errors import ConfigError
from glow_lightning.flows.latents import (
    apply_direction,
    attribute_direction,
    group_masks,
    pick_images,
)
from glow_lightning.ops import bin_centres, postprocess
from glow_lightning.train.run import build_datamodule, train
from tests.wandb_reader import find_run_dir, isolate_wandb, media_file, read_summary

STRENGTHS = [-1.0, 0.0, 1.0, 2.0]
TINY = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=300",
        "data.max_test=100", "data.batch_size=16", "trainer.max_steps=4", "trainer.max_time=null",
        "trainer.enable_progress_bar=false", "callbacks.enabled=false", "run_name=tiny",
        "trainer.accelerator=cpu", "trainer.devices=1", "trainer.strategy=auto"]


# ----------------------------------------------------------------------------- pure maths
def test_direction_is_the_difference_of_group_means_in_every_latent():
    gen = torch.Generator().manual_seed(0)
    latents = [torch.randn(6, 2, 4, 4, generator=gen), torch.randn(6, 8, 2, 2, generator=gen)]
    labels = torch.tensor([3, 7, 3, 1, 7, 3])
    d = attribute_direction(latents, *group_masks(labels, target=3, source=7))
    for z, dz in zip(latents, d, strict=True):
        torch.testing.assert_close(dz, z[labels == 3].mean(0) - z[labels == 7].mean(0))
    without = attribute_direction(latents, *group_masks(labels, target=3))
    torch.testing.assert_close(without[0], latents[0][labels == 3].mean(0)
                               - latents[0][labels != 3].mean(0))


def test_apply_direction_rows_are_images_columns_are_strengths():
    z = [torch.arange(6.0).view(3, 2)]
    out = apply_direction(z, [torch.tensor([1.0, -1.0])], STRENGTHS)[0].view(3, 4, 2)
    for i in range(3):
        for j, s in enumerate(STRENGTHS):
            torch.testing.assert_close(out[i, j], z[0][i] + s * torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(out[:, 1], z[0])  # strength 0: unchanged


def test_empty_group_and_picking():
    with pytest.raises(ValueError, match="empty"):
        attribute_direction([torch.zeros(2, 1)], torch.tensor([True, True]),
                            torch.tensor([False, False]))
    bins, labels = torch.arange(5).view(5, 1), torch.tensor([7, 1, 7, 7, 2])
    assert pick_images(bins, labels, 2, target=1, source=7).flatten().tolist() == [0, 2]
    assert pick_images(bins, labels, 9, target=7, source=None).flatten().tolist() == [1, 4]


def test_parse_words():
    assert parse_attribute("4") == (4, [])
    assert parse_attribute("Smiling") == (1, ["data.label_column=Smiling"])
    assert parse_strengths("-1,0,1.5") == [-1.0, 0.0, 1.5]
    with pytest.raises(ConfigError):
        parse_strengths("a,b")


# ----------------------------------------------------------------------------- a trained model
@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits_cache):
    """A tiny Glow trained for a few steps on the digits, with the callback and offline W&B."""
    root = tmp_path_factory.mktemp("manipulate")
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, root / "wandb_env")
        cfg = load_config([*TINY, f"data.cache_dir={digits_cache}", f"out_dir={root}",
                           "logger.kind=wandb", "logger.mode=offline"])
        callback = AttributeManipulation(target=1, source=7, strengths=STRENGTHS, num_images=4,
                                         num_reference=200)
        train(cfg, extra_callbacks=[callback])
    return root / "tiny", digits_cache


def _cells(path, n_rows: int, n_cols: int, size: int = 32, padding: int = 2) -> np.ndarray:
    grid = np.asarray(Image.open(path))
    assert grid.shape == (n_rows * (size + padding) + padding, n_cols * (size + padding) + padding)
    step = size + padding
    return np.array([[grid[padding + r * step : padding + r * step + size,
                           padding + c * step : padding + c * step + size]
                      for c in range(n_cols)] for r in range(n_rows)])


def test_strength_zero_column_is_the_reconstruction(trained, tmp_path):
    run, cache = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    out = manipulate_checkpoint(str(ckpt), "1", 7, STRENGTHS, 4, 200, str(tmp_path / "m.png"),
                                [f"data.cache_dir={cache}"])
    cells = _cells(out, 4, len(STRENGTHS))
    module = load_module(ckpt)
    dm = build_datamodule(load_config([*TINY, f"data.cache_dir={cache}"]))
    bins, labels = dm.example_images(80, split="test")
    sevens = bins[labels == 7][:4]
    x = bin_centres(sevens, module.n_bits, torch.zeros(1))
    with module.sampling() as flow, torch.no_grad():
        recon = postprocess(flow.decode(list(flow.encode(x))), module.n_bits)
    expected = (recon[:, 0] * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(cells[:, 1], expected)  # column of strength 0
    np.testing.assert_array_equal(cells[:, 1], sevens[:, 0].numpy())  # exact flow: the inputs
    assert not np.array_equal(cells[:, 2], cells[:, 1])  # strength 1 moves the images


def test_callback_writes_png_and_logs_to_wandb(trained):
    run, _ = trained
    pngs = sorted((run / "media" / "manipulation").glob("step*.png"))
    assert pngs
    _cells(pngs[-1], 4, len(STRENGTHS))
    wandb_run = find_run_dir(run)
    entry = read_summary(wandb_run)["manipulation"]
    assert media_file(wandb_run, entry).is_file()


def test_config_keys_turn_the_manipulation_callback_on():
    from glow_lightning.callbacks import build_callbacks

    on = [*TINY, "callbacks.enabled=true"]
    cfg = load_config([*on, "callbacks.manipulation_attribute=3",
                       "callbacks.manipulation_source=8"])
    found = [c for c in build_callbacks(cfg.callbacks) if isinstance(c, AttributeManipulation)]
    assert len(found) == 1 and (found[0].target, found[0].source) == (3, 8)
    assert not any(isinstance(c, AttributeManipulation)
                   for c in build_callbacks(load_config(on).callbacks))
