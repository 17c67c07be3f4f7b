"""RealNVP as in Dinh et al. (2017): batch norm with running statistics, logit preprocessing,
memory-saving backprop through batch statistics, and bits/dim against a hand computation."""

import math

import torch

from glow_lightning.flows import BatchNormFlow, build_flow, scale_parameters
from glow_lightning.flows.nets import WNConv2d
from glow_lightning.ops import bits_per_dim
from tests.flow_utils import randomize

SMALL = dict(image_shape=(3, 8, 8), levels=2, steps=2, hidden_channels=8,
             architecture="realnvp", learn_top=False, split_prior=False, realnvp=dict(blocks=2))


def test_batchnorm_trains_on_batch_statistics_and_evaluates_on_running_ones():
    layer = BatchNormFlow(3, momentum=0.5).double()
    x = torch.randn(16, 3, 4, 4, dtype=torch.float64) * torch.tensor([1.0, 2.0, 4.0],
                                                                      dtype=torch.float64).view(
        1, 3, 1, 1) + 5
    z, logdet = layer(x)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(z.var(dim=(0, 2, 3), unbiased=False),
                          torch.ones(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(layer.inverse(z)[0], x, atol=1e-10)  # the training forward's inverse
    var = x.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(logdet, (-0.5 * torch.log(var + layer.eps)).sum().expand(16) * 16)
    n = x.numel() / 3
    expected_var = 0.5 * 1 + 0.5 * x.var(dim=(0, 2, 3), unbiased=False) * n / (n - 1)
    assert torch.allclose(layer.running_mean, 0.5 * x.mean(dim=(0, 2, 3)))
    assert torch.allclose(layer.running_var, expected_var)
    layer.eval()
    z_eval, _ = layer(x)
    std = torch.sqrt(layer.running_var + layer.eps).view(1, 3, 1, 1)
    assert torch.allclose(z_eval, (x - layer.running_mean.view(1, 3, 1, 1)) / std)
    assert torch.allclose(layer.inverse(z_eval)[0], x, atol=1e-10)
    assert {"running_mean", "running_var"} <= dict(layer.named_buffers()).keys()


def _grads(memory_saving, x):
    torch.manual_seed(0)
    m = randomize(build_flow(**SMALL, memory_saving=memory_saving).double(), 0.05).train()
    loss = -m.log_prob(x).mean()
    loss.backward()
    buffers = {n: b.clone() for n, b in m.named_buffers() if "running" in n}
    return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}, buffers


def test_memory_saving_gradients_equal_standard_through_batch_statistics():
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64) - 0.5
    loss_a, grads_a, running_a = _grads(False, x)
    loss_b, grads_b, running_b = _grads(True, x)
    assert torch.allclose(loss_a, loss_b, rtol=1e-12)
    assert grads_a.keys() == grads_b.keys() and len(running_a) > 0
    for key, g in grads_a.items():
        rel = (g - grads_b[key]).norm() / g.norm().clamp_min(1e-30)
        assert rel < 1e-10, (key, rel.item())
    for key, value in running_a.items():  # the re-run layers did not count the batch twice
        assert torch.allclose(value, running_b[key], rtol=0, atol=1e-12), key


def test_bits_per_dim_with_logit_preprocessing_matches_a_hand_computation():
    """A 1×2×2 image through logit → coupling → batch norm → coupling → batch norm (eval mode,
    fresh zero-output nets, so the couplings are the identity) under N(0, 1), by hand."""
    torch.manual_seed(0)
    flow = build_flow((1, 2, 2), architecture="realnvp", levels=1, steps=1, hidden_channels=4,
                      learn_top=False, split_prior=False, realnvp=dict(blocks=1)).double()
    norms = [m for m in flow.modules() if isinstance(m, BatchNormFlow)]
    stats = [(0.3, 2.0), (-0.2, 0.5)]
    for norm, (mean, var) in zip(norms, stats, strict=True):
        norm.running_mean.fill_(mean)
        norm.running_var.fill_(var)
    flow.eval()
    pixels = [[0.1, -0.45], [0.3, 0.49]]
    x = torch.tensor(pixels, dtype=torch.float64).view(1, 1, 2, 2)
    alpha, eps, total = 0.05, norms[0].eps, 0.0
    for p in (v for row in pixels for v in row):
        s = alpha + (1 - 2 * alpha) * (p + 0.5)
        z = math.log(s / (1 - s))
        total += math.log((1 - 2 * alpha) / (s * (1 - s)))  # the logit's slope
        for mean, var in stats:
            z = (z - mean) / math.sqrt(var + eps)
            total -= 0.5 * math.log(var + eps)
        total += -0.5 * (math.log(2 * math.pi) + z * z)
    hand_bpd = (-total + 4 * math.log(256)) / (4 * math.log(2))
    assert abs(flow.log_prob(x).item() - total) < 1e-10
    assert abs(bits_per_dim(flow.log_prob(x), 4, 8).item() - hand_bpd) < 1e-12


def test_l2_acts_on_the_scale_parameters_only():
    flow = build_flow(**SMALL)
    chosen = {id(p) for p in scale_parameters(flow)}
    gains = [m.g for m in flow.modules() if isinstance(m, WNConv2d)]
    assert gains and all(id(g) in chosen for g in gains)
    assert not any(id(m.v) in chosen for m in flow.modules() if isinstance(m, WNConv2d))
    names = {n for n, p in flow.named_parameters() if id(p) in chosen}
    assert names and all(n.endswith((".g", ".scale.scale")) for n in names)
