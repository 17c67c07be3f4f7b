"""bfloat16 coupling networks: the flow stays exactly invertible with an exact log-det, because
only the networks (which parameterise the transforms) run in bfloat16."""

import pytest
import torch

from glow_lightning.flows import build_flow
from glow_lightning.flows.nets import GlowNet, ResNet
from tests.flow_utils import brute_logdet, flat, randomize

SMALL = dict(image_shape=(2, 8, 8), levels=2, steps=2, hidden_channels=16)


@pytest.fixture(params=["glow", "realnvp"])
def bf16_model(request):
    torch.manual_seed(0)
    m = build_flow(**SMALL, architecture=request.param, net_dtype="bfloat16")
    m.log_prob(torch.rand(8, 2, 8, 8) - 0.5)  # ActNorm data init
    # eval mode: RealNVP's batch norms use running statistics, one bijection per sample
    return randomize(m, 0.05).train(request.param == "glow")


def test_networks_really_compute_in_bfloat16():
    net = GlowNet(2, 4, 16)
    net.net_dtype = "bfloat16"
    net(torch.randn(8, 2, 4, 4))  # ActNorm data init
    seen = []
    hook = net.conv2.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    out = net(torch.randn(2, 2, 4, 4))
    hook.remove()
    assert seen == [torch.bfloat16] and out[0].dtype == torch.float32
    res = ResNet(2, 4, 8, blocks=2)
    res.net_dtype = "bfloat16"
    seen.clear()
    hook = res.inp.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    assert res(torch.randn(1, 2, 4, 4))[0].dtype == torch.float32
    hook.remove()
    assert seen == [torch.bfloat16]


def test_bf16_nets_round_trip_to_float32_rounding(bf16_model):
    x = torch.rand(4, 2, 8, 8) - 0.5
    with torch.no_grad():
        err = (bf16_model.decode(bf16_model.encode(x)) - x).abs().max().item()
    assert err <= 1e-5


@pytest.fixture
def nets_held_constant(monkeypatch):
    """Coupling networks whose input is detached: the brute-force Jacobian then holds only the
    transforms, permutations and ActNorms. A coupling's log-det does not depend on its network's
    derivative (the Jacobian is block-triangular), but a bfloat16 backward rounds each of the
    brute force's row-by-row backward passes differently, which perturbs every entry of the
    assembled matrix and, through the composition of layers, its determinant (by 0.02–0.4 nats
    on a CPU without bfloat16 units)."""
    hidden, res_forward = GlowNet.hidden, ResNet.forward
    monkeypatch.setattr(GlowNet, "hidden", lambda self, x: hidden(self, x.detach()))
    monkeypatch.setattr(ResNet, "forward", lambda self, x: res_forward(self, x.detach()))


def test_bf16_nets_logdet_matches_brute_force_jacobian(bf16_model, nets_held_constant):
    x = torch.rand(2, 2, 8, 8) - 0.5
    logdet = torch.stack(bf16_model(x).logdets).sum(0)
    brute = brute_logdet(lambda v: flat(bf16_model.encode(v)), x)
    assert torch.allclose(logdet, brute, rtol=1e-4, atol=1e-3)


def test_bf16_nets_differ_from_float32_but_only_slightly():
    torch.manual_seed(0)
    fp32 = build_flow(**SMALL)
    x = torch.rand(8, 2, 8, 8) - 0.5
    fp32.log_prob(x)
    randomize(fp32, 0.05)
    bf16 = build_flow(**SMALL, net_dtype="bfloat16")
    bf16.load_state_dict(fp32.state_dict())
    a, b = fp32.log_prob(x), bf16.log_prob(x)
    assert not torch.equal(a, b)  # the networks really ran in another precision
    assert torch.allclose(a, b, rtol=1e-2)


def test_bf16_nets_train_every_parameter(bf16_model):
    loss = -bf16_model.log_prob(torch.rand(4, 2, 8, 8) - 0.5).mean()
    loss.backward()
    missing = [n for n, p in bf16_model.named_parameters() if p.grad is None]
    assert not missing
    assert all(p.grad.dtype == torch.float32 for p in bf16_model.parameters())


def test_unknown_net_dtype_is_refused():
    with pytest.raises(ValueError, match="net_dtype='float16' is not supported"):
        build_flow(**SMALL, net_dtype="float16")


def test_bf16_nets_warn_once_on_a_cpu_without_bfloat16_kernels():
    """Where oneDNN has no bfloat16 kernels (no AVX-512 BF16 / AMX) the nets would fall back to a
    generic convolution several times slower than float32: say so once; elsewhere stay quiet."""
    import warnings

    from glow_lightning.flows import nets

    nets._warn_if_no_cpu_bfloat16.cache_clear()
    net = GlowNet(2, 4, 8)
    net.net_dtype = "bfloat16"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            net(torch.randn(2, 2, 4, 4))
    said = [w for w in caught if "net_dtype=bfloat16" in str(w.message)]
    expected = 0 if nets.cpu_bfloat16_kernels() else 1
    assert len(said) == expected
    if said:
        assert "use model.net_dtype=float32" in str(said[0].message)
