"""Bounded learned priors (``model.prior_scale=softclamp``): the log-scale stays in
(-clamp, clamp), the density and the sampler read the same bounded log-scale, and the bound is
the reference prior wherever the free log-scale is small."""

import math

import pytest
import torch

from glow_lightning.flows import Split, build_flow
from glow_lightning.flows.priors import gaussian_log_prob
from tests.flow_utils import randomize

SMALL = dict(image_shape=(4, 8, 8), levels=2, steps=1, hidden_channels=8, coupling="affine",
             permutation="invconv_lu", num_classes=3)


def _flow(clamp: float | None, scale: float) -> torch.nn.Module:
    bound = dict(prior_scale="softclamp", prior_clamp=clamp) if clamp else {}
    torch.manual_seed(0)
    return randomize(build_flow(**SMALL, **bound).double(), scale=scale)


def _split(flow) -> Split:
    return next(s for s in flow.splits if isinstance(s, Split))


def test_bounded_log_scale_stays_inside_the_clamp_where_the_free_one_does_not():
    free, bounded = _flow(None, 1.0), _flow(0.5, 1.0)  # same weights: only the bound differs
    kept = torch.randn(6, _split(free).kept, 4, 4, dtype=torch.float64) * 3
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    raw = [_split(free).prior.params(kept)[1], free.top_prior.params(6, y, kept)[1]]
    low = [_split(bounded).prior.params(kept)[1], bounded.top_prior.params(6, y, kept)[1]]
    for free_logs, logs in zip(raw, low, strict=True):
        assert free_logs.abs().max() > 1.0
        assert logs.abs().max() <= 0.5  # tanh saturates to the bound in float64
        assert torch.allclose(logs, 0.5 * torch.tanh(free_logs / 0.5))


def test_density_and_sampling_use_the_same_bounded_log_scale():
    """A split latent drawn at T = 1 is ``mean + e^logs · ε``; its log-density must be the
    standard normal's of ε minus Σ logs (change of variables), with the bounded logs."""
    split = _split(_flow(0.5, 1.0))
    kept = torch.randn(3, split.kept, 4, 4, dtype=torch.float64) * 3
    latent = split.inverse(kept, None, 1.0, torch.Generator().manual_seed(5))[:, split.kept:]
    eps = torch.randn(latent.shape, generator=torch.Generator().manual_seed(5),
                      dtype=latent.dtype)
    mean, logs = split.prior.params(kept)
    assert torch.allclose(latent, mean + logs.exp() * eps)
    _, out, log_prob = split(torch.cat([kept, latent], dim=1))
    normal = (-0.5 * (eps**2 + math.log(2 * math.pi))).sum((1, 2, 3))
    assert torch.allclose(log_prob, normal - logs.sum((1, 2, 3)))
    assert torch.allclose(log_prob, gaussian_log_prob(out, mean, logs))


def test_bound_is_the_reference_prior_where_the_free_log_scale_is_small():
    x = torch.rand(4, 4, 8, 8, dtype=torch.float64) - 0.5
    y = torch.tensor([0, 1, 2, 0])
    free, bounded = _flow(None, 0.01), _flow(3.0, 0.01)
    with torch.no_grad():
        gap = (free.log_prob(x, y) - bounded.log_prob(x, y)).abs().max()
    assert 0 < gap < 1e-6 * free.log_prob(x, y).abs().min()


def test_bounded_flow_trains_and_round_trips():
    flow = _flow(0.5, 0.05)
    x = torch.rand(2, 4, 8, 8, dtype=torch.float64) - 0.5
    y = torch.tensor([1, 2])
    (-flow.log_prob(x, y).mean()).backward()
    assert _split(flow).prior.conv.conv.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(flow.decode(flow.encode(x)), x, atol=1e-10)
        assert torch.isfinite(flow.sample(3, 1.0, y=torch.tensor([0, 1, 2]))).all()


@pytest.mark.parametrize("kwargs, needle", [
    (dict(prior_scale="hard"), "prior_scale='hard' is not supported; allowed values: free, "
                               "softclamp"),
    (dict(prior_scale="softclamp", prior_clamp=0.0), "prior_scale=softclamp needs prior_clamp > 0"),
    (dict(prior_clamp=-1.0), "prior_clamp must be a number >= 0"),
])
def test_bad_prior_settings_name_the_key(kwargs, needle):
    with pytest.raises(ValueError) as err:
        build_flow((3, 16, 16), levels=2, steps=1, hidden_channels=4, **kwargs)
    assert needle in str(err.value)
