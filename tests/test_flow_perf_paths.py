"""The fast paths compute the same maths as the plain formulas (float64, small shapes)."""

import pytest
import torch
import torch.nn.functional as F

from glow_lightning.flows import (
    ActNorm,
    CheckerboardMask,
    FlowConfig,
    build_flow,
    compile_flow,
    fused,
    glow_coupling,
    realnvp_coupling,
)
from glow_lightning.flows.nets import ConvActNorm, ZeroConv2d
from glow_lightning.flows.permutations import InvConv1x1, InvConv1x1LU
from glow_lightning.flows.squeeze import is_channels_last, squeeze, unsqueeze
from tests.flow_utils import randomize

SMALL = dict(image_shape=(4, 8, 8), levels=2, steps=2, hidden_channels=8)


def test_actnorm_mirror_follows_the_buffer_through_load_state_dict():
    trained = ActNorm(3).double()
    trained(torch.randn(8, 3, 4, 4, dtype=torch.float64))
    fresh = ActNorm(3).double()
    assert not fresh.is_initialized
    fresh.load_state_dict(trained.state_dict())
    assert fresh.is_initialized and fresh._seen_initialized
    trained.load_state_dict(ActNorm(3).double().state_dict())  # an uninitialised checkpoint
    assert not trained.is_initialized  # so the next batch initialises it again


def test_conv_actnorm_folded_equals_conv_then_actnorm():
    layer = randomize(ConvActNorm(3, 5, 3).double(), 0.1)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    plain = layer.norm.apply_forward(layer.conv(x))
    assert torch.allclose(layer(x), plain, atol=1e-12)


def test_zero_conv_folded_scale_and_halves_match_the_interleaved_reading():
    layer = randomize(ZeroConv2d(4, 6).double(), 0.1)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    plain = layer.conv(x) * torch.exp(layer.logs * layer.logscale_factor)
    assert torch.allclose(layer(x), plain, atol=1e-12)
    evens, odds = layer.halves(x)
    assert torch.allclose(evens, plain[:, 0::2], atol=1e-12)
    assert torch.allclose(odds, plain[:, 1::2], atol=1e-12)


def test_squeeze_is_channels_last_and_matches_the_reference_reshape():
    x = torch.randn(2, 3, 8, 6, dtype=torch.float64)
    b, c, h, w = x.shape
    ref = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, 4, 3)
    out = squeeze(x)
    assert torch.equal(out, ref) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(squeeze(x.contiguous(memory_format=torch.channels_last)), ref)
    assert torch.equal(unsqueeze(out), x) and torch.equal(unsqueeze(ref), x)


COUPLINGS = {
    "additive": lambda: glow_coupling(6, FlowConfig(hidden_channels=8, coupling="additive")),
    "affine": lambda: glow_coupling(6, FlowConfig(hidden_channels=8)),
    "checkerboard": lambda: realnvp_coupling(CheckerboardMask(6, 4, 4, 1), 8, FlowConfig()),
}


@pytest.mark.parametrize("name", sorted(COUPLINGS))
def test_coupling_rebuild_reconstructs_the_input_and_the_forward(name):
    layer = randomize(COUPLINGS[name]().double(), 0.1)
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    z, logdet = layer(x)
    rebuilt = layer.rebuild(z)
    a, b = rebuilt.leaves
    assert torch.allclose(rebuilt.join(a, b), x, atol=1e-12)
    assert torch.allclose(rebuilt.z, z, atol=1e-12) and torch.allclose(rebuilt.logdet, logdet)
    assert a.requires_grad and b.requires_grad and rebuilt.z.requires_grad


def test_coupling_rebuild_evaluates_the_net_once():
    layer = randomize(glow_coupling(6, FlowConfig(hidden_channels=8)).double(), 0.1)
    z, _ = layer(torch.randn(2, 6, 4, 4, dtype=torch.float64))
    calls = []
    layer.net.register_forward_hook(lambda *args: calls.append(1))
    layer.rebuild(z)
    assert len(calls) == 1


def test_memory_saving_gradients_equal_standard_for_additive_coupling():
    x = torch.rand(3, 4, 8, 8, dtype=torch.float64) - 0.5
    grads = []
    for memory_saving in (False, True):
        torch.manual_seed(0)
        spec = dict(SMALL, coupling="additive", memory_saving=memory_saving)
        m = randomize(build_flow(**spec).double(), 0.05).train()
        (-m.log_prob(x).mean()).backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    for key, g in grads[0].items():
        assert torch.allclose(g, grads[1][key], atol=1e-10, rtol=1e-7), key


def test_sampling_under_inference_mode_reuses_the_cached_inverse_weight():
    m = randomize(build_flow(**SMALL).double(), 0.05).eval()
    conv = next(mod for mod in m.modules() if isinstance(mod, InvConv1x1LU))
    m.sample(2, 0.7)
    cached = conv._cache[1]
    m.sample(3, 0.7)
    assert conv._cache[1] is cached  # not recomputed
    assert torch.allclose(cached, torch.linalg.inv(conv.weight_and_logdet()[0]), atol=1e-12)
    with torch.no_grad():
        conv.log_s.add_(0.1)  # an update invalidates it
    m.sample(2, 0.7)
    assert conv._cache[1] is not cached


def test_inverse_cache_follows_a_fused_optimiser_step():
    """Fused Adam updates parameters without bumping their version counters: the cached inverse
    must still follow the new weights, or decode(encode(x)) drifts away from x."""
    torch.manual_seed(0)
    m = build_flow(**SMALL)
    x = torch.rand(8, 4, 8, 8) - 0.5
    m.log_prob(x)  # ActNorm init
    opt = torch.optim.Adam(m.parameters(), lr=1e-2, fused=True)
    for _ in range(3):
        m.eval()
        with torch.inference_mode():
            err = (m.decode(m.encode(x)) - x).abs().max().item()
        assert err < 1e-4
        m.train()
        opt.zero_grad()
        (-m.log_prob(x).mean()).backward()
        opt.step()


def test_decode_returns_a_plain_contiguous_image():
    m = randomize(build_flow(**SMALL).double(), 0.05)
    x = torch.rand(2, 4, 8, 8, dtype=torch.float64) - 0.5
    out = m.decode(m.encode(x))
    assert out.is_contiguous() and torch.allclose(out, x, atol=1e-10)


def test_compile_flow_keeps_module_state_and_values():
    torch.manual_seed(0)
    m = randomize(build_flow(**SMALL).double(), 0.05)
    x = torch.rand(2, 4, 8, 8, dtype=torch.float64) - 0.5
    ref, keys = m.log_prob(x), list(m.state_dict())
    assert compile_flow(m, backend="eager") is m  # dynamo tracing only: seconds, not minutes
    out = m.log_prob(x)
    out.sum().backward()
    assert list(m.state_dict()) == keys and torch.allclose(out, ref, atol=1e-10)
    assert all(p.grad is not None for p in m.parameters())


def compiled(model):
    """Whether ``model``'s forward now runs through ``torch.compile`` (``nn.Module.compile``)."""
    return getattr(model, "_compiled_call_impl", None) is not None


def test_compile_flow_waits_for_the_actnorm_data_init():
    # compiled before its first batch, the flow runs that batch eagerly (the data-dependent
    # init) and compiles right after it, so the compiled graph never traces the init
    torch.manual_seed(0)
    x = torch.rand(2, 4, 8, 8, dtype=torch.float64) - 0.5
    ref = build_flow(**SMALL).double()
    m = build_flow(**SMALL).double()
    m.load_state_dict(ref.state_dict())
    assert compile_flow(m, backend="eager") is m and not compiled(m)
    assert torch.allclose(m.log_prob(x), ref.log_prob(x), atol=1e-10)  # both initialise here
    assert compiled(m) and not m._forward_hooks
    out = m.log_prob(x)
    out.sum().backward()
    assert torch.allclose(out, ref.log_prob(x), atol=1e-10)
    assert all(p.grad is not None for p in m.parameters())


def test_in_place_relu_leaves_gradients_equal_to_out_of_place():
    layer = randomize(glow_coupling(4, FlowConfig(hidden_channels=8)).double(), 0.1)
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    net = layer.net
    h = net.out(F.relu(net.conv2(F.relu(net.conv1(x[:, :2])))))
    (g_ref,) = torch.autograd.grad(h.square().sum(), x)
    (g,) = torch.autograd.grad(sum(p.square().sum() for p in net(x[:, :2])), x)
    assert torch.allclose(g, g_ref, atol=1e-12)


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("perm", [InvConv1x1, InvConv1x1LU])
def test_fused_actnorm_invconv_equals_the_two_layers(perm, channels_last):
    torch.manual_seed(0)
    norm, conv = ActNorm(6).double(), randomize(perm(6).double(), 0.1)
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64)
    norm.init_from(x)
    randomize(norm, 0.2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y, ld_norm = norm(x)
    ref, ld_conv = conv(y)
    ref_ld = ld_norm + ld_conv
    z, ld = fused.forward(norm, conv, x)
    assert torch.allclose(z, ref, atol=1e-12) and torch.allclose(ld, ref_ld, atol=1e-10)
    assert is_channels_last(z) == channels_last
    params = [x, *norm.parameters(), *conv.parameters()]
    g_ref = torch.autograd.grad((ref * ref.detach().sin()).sum() + ref_ld.sum(), params)
    g = torch.autograd.grad((z * z.detach().sin()).sum() + ld.sum(), params)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g, g_ref, strict=True))
    with torch.no_grad():
        back, inv_ld = fused.inverse(norm, conv, z)
        assert torch.allclose(back, x, atol=1e-10) and torch.allclose(inv_ld, -ld, atol=1e-10)
