"""Pure pieces of the callbacks package: grids, PNGs, latent interpolation, the factory."""

import doctest

import numpy as np
import pytest
import torch
from PIL import Image

import glow_lightning.grids as grid_module
from glow_lightning.callbacks import (
    Interpolations,
    LevelBits,
    ReconstructionCheck,
    RunSummary,
    SampleGrid,
    build_callbacks,
)
from glow_lightning.config import CallbackConfig
from glow_lightning.flows.latents import interpolate_latents
from glow_lightning.grids import make_grid, save_png


def test_make_grid_places_images_row_major_with_padding():
    images = torch.zeros(3, 1, 2, 2)
    images[0] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # marker top-left
    images[1] = torch.tensor([[0.0, 1.0], [0.0, 0.0]])  # marker top-right
    images[2] = torch.tensor([[0.2, 0.2], [0.2, 1.0]])  # grey with marker bottom-right
    grid = make_grid(images, nrow=2, padding=1, pad_value=0.6)
    p, w, g = 153, 255, 51  # 0.6, 1.0 and 0.2 as uint8
    expected = np.array([
        [p, p, p, p, p, p, p],
        [p, w, 0, p, 0, w, p],
        [p, 0, 0, p, 0, 0, p],
        [p, p, p, p, p, p, p],
        [p, g, g, p, p, p, p],
        [p, g, w, p, p, p, p],
        [p, p, p, p, p, p, p],
    ], dtype=np.uint8)
    assert grid.dtype == np.uint8 and grid.shape == (7, 7, 1)
    np.testing.assert_array_equal(grid[..., 0], expected)


def test_make_grid_keeps_channels_and_sizes():
    images = torch.zeros(5, 3, 4, 6)
    images[4, 0] = 1.0  # last image pure red
    grid = make_grid(images, nrow=2, padding=2, pad_value=0.0)
    assert grid.shape == (3 * (4 + 2) + 2, 2 * (6 + 2) + 2, 3)
    top, left = 2 + 2 * 6, 2
    np.testing.assert_array_equal(grid[top : top + 4, left : left + 6], [[[255, 0, 0]] * 6] * 4)
    assert grid.sum() == 255 * 4 * 6
    assert make_grid(images, nrow=100).shape == (8, 5 * 8 + 2, 3)  # one row when nrow >= N


def test_make_grid_clamps_and_zeroes_non_finite():
    images = torch.tensor([[[[-1.0, 2.0, float("nan"), float("inf")]]]])
    assert make_grid(images, nrow=1, padding=0)[..., 0].tolist() == [[0, 255, 0, 255]]
    with pytest.raises(ValueError, match="non-empty"):
        make_grid(torch.zeros(0, 1, 2, 2))


def test_grid_doctests():
    assert doctest.testmod(grid_module).failed == 0


@pytest.mark.parametrize("shape, mode", [((5, 7, 1), "L"), ((5, 7, 3), "RGB"), ((5, 7), "L")])
def test_save_png_round_trip(tmp_path, shape, mode):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = save_png(tmp_path / "a" / "b.png", array)
    with Image.open(path) as img:
        assert img.mode == mode and img.size == (7, 5)
        np.testing.assert_array_equal(np.asarray(img), array.reshape(np.asarray(img).shape))


def test_save_png_rejects_floats(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "x.png", np.zeros((2, 2), dtype=np.float32))


def test_interpolate_latents_hits_both_ends_exactly():
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(3, 2, 4, 4, generator=gen), torch.randn(3, 8, 2, 2, generator=gen)]
    end = [torch.randn_like(z) for z in start]
    path = interpolate_latents(start, end, steps=5)
    for a, b, z in zip(start, end, path, strict=True):
        z = z.view(3, 5, *a.shape[1:])
        assert torch.equal(z[:, 0], a) and torch.equal(z[:, -1], b)
        torch.testing.assert_close(z[:, 2], (a + b) / 2)


def test_build_callbacks_follows_config():
    cfg = CallbackConfig(temperatures=[0.0, 0.6], num_samples=9, interpolation_pairs=2,
                         interpolation_steps=5, every_n_validations=3, seed=7)
    cbs = build_callbacks(cfg)
    assert [type(c) for c in cbs] == [SampleGrid, Interpolations, ReconstructionCheck,
                                      LevelBits, RunSummary]
    samples, interp = cbs[0], cbs[1]
    assert samples.temperatures == (0.0, 0.6) and samples.num_samples == 9
    assert samples.seed == 7 and samples.every_n_validations == 3 and samples.nrow == 3
    assert (interp.pairs, interp.steps, interp.every_n_validations) == (2, 5, 3)
    cfg.enabled = False
    assert [type(c) for c in build_callbacks(cfg)] == [RunSummary]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        SampleGrid(temperatures=())
    with pytest.raises(ValueError):
        Interpolations(steps=1)
    with pytest.raises(ValueError):
        ReconstructionCheck(num_images=0)
