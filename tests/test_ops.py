"""Bits per dimension against hand computations, n-bit reduction, dequantisation."""

import math

import pytest
import torch

from glow_lightning.ops import bins_to_float, bits_per_dim, dequantize, postprocess, reduce_bits


@pytest.mark.parametrize("n_bits", [8, 5])
def test_bpd_identity_flow_standard_normal_by_hand(n_bits):
    # Identity flow, N(0, 1) prior, two fixed 2x2 images: log p(x) = -0.5 Σ (x² + log 2π).
    pixels = torch.tensor([[[[0, 64], [128, 255]]], [[[3, 200], [17, 99]]]], dtype=torch.uint8)
    u = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]], [[[0.9, 0.5], [0.0, 0.7]]]]) / 2**n_bits
    x = bins_to_float(reduce_bits(pixels, n_bits), n_bits) + u
    log_prob = -0.5 * (x**2 + math.log(2 * math.pi)).flatten(1).sum(1)
    d = 4
    bins = torch.div(pixels.long(), 2 ** (8 - n_bits), rounding_mode="floor")
    for i in range(2):
        xs = [b / 2**n_bits - 0.5 + uu for b, uu in zip(bins[i].flatten().tolist(),
                                                      u[i].flatten().tolist(), strict=True)]
        nll = sum(0.5 * v * v + 0.5 * math.log(2 * math.pi) for v in xs) + d * n_bits * math.log(2)
        expected = nll / (d * math.log(2))
        got = bits_per_dim(log_prob, d, n_bits)[i].item()
        assert abs(got - expected) < 1e-5, (got, expected)


def test_bpd_of_uniform_density_is_n_bits():
    # A density of 1 on the unit cube gives exactly n bits per dimension.
    assert bits_per_dim(torch.zeros(3), num_dims=3072, n_bits=8).tolist() == [8.0] * 3
    assert bits_per_dim(torch.zeros(1), num_dims=10, n_bits=5).item() == pytest.approx(5.0)


def test_reduce_and_bins_to_float_5_bits():
    x = torch.arange(256, dtype=torch.uint8)
    bins = reduce_bits(x, 5)
    assert bins.min() == 0 and bins.max() == 31 and (bins == 7).sum() == 8
    p = bins_to_float(bins, 5)
    assert p.min() == -0.5 and p.max() == pytest.approx(0.5 - 1 / 32)


def test_dequantize_stays_in_bin_and_does_not_mutate():
    x = bins_to_float(torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8), 8)
    before = x.clone()
    y = dequantize(x, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, before)
    assert ((y - x) >= 0).all() and ((y - x) < 1 / 256).all()
    assert torch.equal(postprocess(y, 8), postprocess(x, 8))


@pytest.mark.parametrize("n", [0, 9, 2.5])
def test_bad_n_bits(n):
    with pytest.raises(ValueError, match="n_bits must be an integer in 1..8"):
        bits_per_dim(torch.zeros(1), 3, n)
