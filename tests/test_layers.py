"""Every flow layer: exact inverse, log-det against the brute-force Jacobian, gradients (float64).
"""

import dataclasses

import pytest
import torch

from glow_lightning.flows import (
    ActNorm,
    BatchNormFlow,
    ChannelMask,
    CheckerboardMask,
    FlowConfig,
    FlowSequence,
    GlowStep,
    InvConv1x1,
    InvConv1x1LU,
    Logit,
    Reverse,
    Shuffle,
    Squeeze,
    glow_coupling,
    realnvp_coupling,
)
from glow_lightning.flows.spec import RealNVPConfig
from tests.flow_utils import brute_logdet, randomize

SHAPE = (2, 4, 8, 8)
GLOW = FlowConfig(hidden_channels=8)
# RealNVP's nets in eval mode: batch norm inside them then uses running statistics, so each
# sample's transform depends on that sample only (what a per-sample Jacobian requires)
RNVP = FlowConfig(hidden_channels=8, realnvp=RealNVPConfig(blocks=2))


def glow(**fields):
    return glow_coupling(4, dataclasses.replace(GLOW, **fields))


def rnvp(mask, **fields):
    return realnvp_coupling(mask, 8, dataclasses.replace(RNVP, **fields)).eval()


LAYERS = {
    "actnorm": lambda: ActNorm(4),
    "batchnorm_eval": lambda: BatchNormFlow(4).eval(),
    "logit": lambda: Logit(0.05),
    "reverse": lambda: Reverse(4),
    "shuffle": lambda: Shuffle(4),
    "invconv": lambda: InvConv1x1(4),
    "invconv_lu": lambda: InvConv1x1LU(4),
    "additive": lambda: glow(coupling="additive"),
    "affine": lambda: glow(),
    "affine_clamped": lambda: glow(affine_clamp=0.5),
    "affine_softclamp": lambda: glow(scale_fn="softclamp", affine_clamp=2.0),
    "affine_tanh": lambda: glow(scale_fn="tanh"),
    "affine_scale_shift": lambda: glow(scale_fn="softclamp", affine_clamp=2.0,
                                       affine_form="scale_shift"),
    "affine_no_net_actnorm": lambda: glow(net_actnorm=False),
    "checkerboard0": lambda: rnvp(CheckerboardMask(4, 8, 8, 0)),
    "checkerboard1": lambda: rnvp(CheckerboardMask(4, 8, 8, 1)),
    "channel": lambda: rnvp(ChannelMask(4, False)),
    "channel_flip": lambda: rnvp(ChannelMask(4, True)),
    "channel_plain_nets": lambda: rnvp(ChannelMask(4), realnvp=RealNVPConfig(
        blocks=1, weight_norm=False, batch_norm=False)),
    "squeeze": lambda: Squeeze(),
    "glow_step": lambda: GlowStep(ActNorm(4), InvConv1x1LU(4), glow()),
    "sequence": lambda: FlowSequence([ActNorm(4), InvConv1x1LU(4), glow(),
                                      Squeeze(), glow_coupling(16, dataclasses.replace(
                                          GLOW, coupling="additive"))]),
}


@pytest.fixture(params=sorted(LAYERS))
def layer(request):
    torch.manual_seed(0)
    return randomize(LAYERS[request.param]().double(), scale=0.1)


def inputs(layer):
    """Standard normal inputs; pixels in [-1/2, 1/2) for the logit layer."""
    x = torch.randn(SHAPE, dtype=torch.float64)
    return torch.rand(SHAPE, dtype=torch.float64) - 0.5 if isinstance(layer, Logit) else x


def test_round_trip_exact(layer):
    x = inputs(layer)
    z, logdet = layer(x)
    assert logdet.shape == (SHAPE[0],)
    back, inv_logdet = layer.inverse(z)
    assert torch.allclose(back, x, atol=1e-10, rtol=0)
    assert inv_logdet.shape == (SHAPE[0],)
    assert torch.allclose(inv_logdet, -logdet, atol=1e-10, rtol=0)


def test_inverse_logdet_matches_brute_force_jacobian(layer):
    z = layer(inputs(layer))[0].detach()
    _, inv_logdet = layer.inverse(z)
    expected = brute_logdet(lambda v: layer.inverse(v)[0], z)
    assert torch.allclose(inv_logdet, expected, atol=1e-8, rtol=0), (inv_logdet, expected)


def test_logdet_matches_brute_force_jacobian(layer):
    x = inputs(layer)
    _, logdet = layer(x)
    expected = brute_logdet(lambda v: layer(v)[0], x)
    assert torch.allclose(logdet, expected, atol=1e-8, rtol=0), (logdet, expected)


def test_inverse_after_forward_has_zero_logdet(layer):
    x = inputs(layer)
    ld = brute_logdet(lambda v: layer.inverse(layer(v)[0])[0], x)
    assert torch.allclose(ld, torch.zeros_like(ld), atol=1e-8)


def test_every_parameter_gets_a_gradient(layer):
    x = inputs(layer).requires_grad_(True)
    z, logdet = layer(x)
    (z.square().sum() - logdet.sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_actnorm_data_init_standardises_and_is_a_buffer():
    spread = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64).view(1, 3, 1, 1)
    x = torch.randn(64, 3, 4, 4, dtype=torch.float64) * spread + 3
    norm = ActNorm(3).double()
    z, _ = norm(x)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(3, dtype=torch.float64),
                          atol=1e-5)
    assert "initialized" in dict(norm.named_buffers())
    restored = ActNorm(3).double()
    restored.load_state_dict(norm.state_dict())
    assert torch.equal(restored(x * 7)[0], norm(x * 7)[0])  # loaded ActNorm does not re-initialise


def test_actnorm_reduce_sees_the_sums():
    from glow_lightning.flows import data_init

    a, b = torch.randn(8, 2, 3, 3).double(), torch.randn(5, 2, 3, 3).double() * 3 + 1
    union = ActNorm(2).double()
    union(torch.cat([a, b]))
    seen = []

    def reduce(stats):  # what an all-reduce over two ranks would return
        other = ActNorm(2).double()
        xd = b
        extra = torch.stack([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)),
                             torch.full((2,), xd.numel() / 2, dtype=torch.float64)])
        seen.append(stats.clone())
        del other
        return stats + extra

    local = ActNorm(2).double()
    with data_init(reduce):
        local(a)
    assert len(seen) == 1 and seen[0].shape == (3, 2)
    assert torch.allclose(local.bias, union.bias) and torch.allclose(local.logs, union.logs)


def test_lu_weight_matches_dense_logdet():
    conv = randomize(InvConv1x1LU(6).double(), 0.1)
    w, logdet = conv.weight_and_logdet()
    assert torch.allclose(logdet, torch.linalg.slogdet(w)[1], atol=1e-12)
    assert conv.p.requires_grad is False and "sign_s" in dict(conv.named_buffers())


def test_inverse_weight_cache_is_invalidated_by_updates():
    conv = InvConv1x1LU(4).double().eval()
    z = torch.randn(1, 4, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        conv.inverse(z)
        conv.log_s.add_(0.3)
        x = conv.inverse(z)[0]
        assert torch.allclose(conv(x)[0], z, atol=1e-12)


def test_clamped_affine_bounds_the_scale_and_stays_exact():
    """With large net outputs the reference scale reaches ~0; the clamped one stays above
    exp(-clamp), and the layer is still exactly invertible with an exact log-det there."""
    torch.manual_seed(0)
    layer = randomize(glow(affine_clamp=1.0).double(), scale=0.3)
    x = torch.randn(SHAPE, dtype=torch.float64)
    _, logscale = layer._params(layer.mask.split(x)[0])
    reference = glow().double()
    reference.load_state_dict(layer.state_dict())
    _, ref_logscale = reference._params(reference.mask.split(x)[0])
    assert ref_logscale.min() < -3 and logscale.min() >= -1.0
    z, logdet = layer(x)
    assert torch.allclose(layer.inverse(z)[0], x, atol=1e-10, rtol=0)
    assert torch.allclose(logdet, brute_logdet(lambda v: layer(v)[0], x), atol=1e-8, rtol=0)
