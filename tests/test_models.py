"""Glow and RealNVP models end to end: exactness, gradients, state, parameter counts, bad input."""

import io

import pytest
import torch

from glow_lightning.flows import build_flow
from tests.flow_utils import brute_logdet, flat, randomize

SMALL = dict(image_shape=(4, 8, 8), levels=2, steps=2, hidden_channels=8)
VARIANTS = {
    "glow_affine_lu": dict(coupling="affine", permutation="invconv_lu"),
    "glow_affine_lu_clamped": dict(coupling="affine", permutation="invconv_lu", affine_clamp=2.0),
    "glow_additive_invconv": dict(coupling="additive", permutation="invconv"),
    "glow_affine_shuffle_cond": dict(coupling="affine", permutation="shuffle", num_classes=3),
    "glow_affine_shuffle_cond_bounded_prior": dict(coupling="affine", permutation="shuffle",
                                                   num_classes=3, prior_scale="softclamp",
                                                   prior_clamp=0.5),
    "glow_additive_reverse": dict(coupling="additive", permutation="reverse", learn_top=False),
    # the paper's RealNVP (batch norm in the nets and after every coupling, logit
    # preprocessing), evaluated in eval mode: running statistics make it one fixed bijection
    "realnvp": dict(architecture="realnvp", steps=1, realnvp=dict(blocks=1)),
    "realnvp_actnorm": dict(architecture="realnvp", steps=1, realnvp=dict(
        blocks=1, flow_norm="actnorm", batch_norm=False, logit_alpha=0.0)),
}
BATCH_STATISTICS = {"realnvp"}  # train mode normalises with the batch's statistics


@pytest.fixture(params=sorted(VARIANTS))
def model(request):
    torch.manual_seed(0)
    spec = {**SMALL, **VARIANTS[request.param]}
    m = randomize(build_flow(**spec).double(), scale=0.05)
    m.spec = spec
    m.batch_statistics = request.param in BATCH_STATISTICS
    if m.batch_statistics:
        randomize_running_statistics(m)
        m.eval()
    return m


@torch.no_grad()
def randomize_running_statistics(model, seed=2):
    gen = torch.Generator().manual_seed(seed)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(torch.randn(buf.shape, generator=gen, dtype=buf.dtype) * 0.3)
        elif name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=gen, dtype=buf.dtype) + 0.5)


def test_decode_encode_exact(model):
    x = torch.rand(2, 4, 8, 8, dtype=torch.float64) - 0.5
    latents = model.encode(x)
    assert sum(z[0].numel() for z in latents) == x[0].numel()  # nothing is dropped
    assert torch.allclose(model.decode(latents), x, atol=1e-10, rtol=0)


def test_model_logdet_matches_brute_force(model):
    x = torch.rand(2, 4, 8, 8, dtype=torch.float64) - 0.5
    logdet = torch.stack(model(x).logdets).sum(0)
    expected = brute_logdet(lambda v: flat(model.encode(v)), x)
    assert torch.allclose(logdet, expected, atol=1e-8, rtol=0)


def test_model_inverse_after_forward_logdet_zero(model):
    x = torch.rand(2, 4, 8, 8, dtype=torch.float64) - 0.5
    ld = brute_logdet(lambda v: model.decode(model.encode(v)), x)
    assert torch.allclose(ld, torch.zeros_like(ld), atol=1e-8)


def test_every_parameter_receives_gradient(model):
    x = torch.rand(4, 4, 8, 8, dtype=torch.float64) - 0.5
    y = torch.tensor([0, 1, 2, 1])
    out = model(x, y if model.num_classes else None)
    loss = -out.log_prob.mean() + (out.logits.square().mean() if out.logits is not None else 0)
    loss.backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_train_and_eval_log_prob_agree(model):
    if model.batch_statistics:  # by design: tests/test_realnvp.py checks its two modes
        return
    x = torch.rand(3, 4, 8, 8, dtype=torch.float64) - 0.5
    train_lp = model.train().log_prob(x)
    eval_lp = model.eval().log_prob(x)
    assert torch.allclose(train_lp, eval_lp, atol=1e-12)


def test_state_dict_round_trip_keeps_actnorm(model):
    x = torch.rand(3, 4, 8, 8, dtype=torch.float64) - 0.5
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(123)  # a different random init, to be overwritten entirely
    rebuilt = build_flow(**model.spec).double().train(model.training)
    rebuilt.load_state_dict(torch.load(buf, weights_only=True))
    probe = x if model.spec.get("architecture") == "realnvp" else x * 3  # logit: in [-½, ½]
    assert torch.equal(rebuilt.log_prob(probe), model.log_prob(probe))  # no ActNorm re-init


def test_sampling_any_n_and_temperature_zero_is_the_mode(model):
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    for n in (1, 5):
        assert model.sample(n, 0.7, generator=g1).shape == (n, 4, 8, 8)
    y = torch.tensor([0, 1]) if model.num_classes else None
    mode1 = model.sample(2, 0.0, y=y, generator=g1)
    mode2 = model.sample(2, 0.0, y=y, generator=g2)
    assert torch.equal(mode1, mode2)
    assert torch.isfinite(model.sample(3, 1.0, generator=g1)).all()


def test_temperature_scales_split_priors_too(model):
    split = next(s for s in model.splits if hasattr(s, "prior"))
    kept = torch.randn(3, split.kept, 4, 4, dtype=torch.float64)
    mean, _ = split.prior.params(kept)
    at = {t: split.inverse(kept, None, t, torch.Generator().manual_seed(7))[:, split.kept:]
          for t in (0.0, 0.5, 1.0)}
    assert torch.equal(at[0.0], mean)
    assert torch.allclose(at[0.5] - mean, 0.5 * (at[1.0] - mean), atol=1e-12)
    assert (at[1.0] - mean).abs().max() > 0.1


def test_config_s_float32_round_trip():
    torch.manual_seed(0)
    m = randomize(build_flow((3, 32, 32), levels=3, steps=8, hidden_channels=128), scale=0.02)
    x = torch.rand(4, 3, 32, 32) - 0.5
    with torch.no_grad():
        err = (m.decode(m.encode(x)) - x).abs().max().item()
    print(f"config S float32 max |decode(encode(x)) - x| = {err:.2e}")
    assert err <= 1e-4


def test_paper_cifar10_parameter_count():
    m = build_flow((3, 32, 32), levels=3, steps=32, hidden_channels=512, coupling="affine",
                   permutation="invconv_lu", learn_top=True)
    count = sum(p.numel() for p in m.parameters())
    print(f"paper CIFAR-10 Glow parameters: {count:,} ({count / 1e6:.2f}M)")
    assert abs(count - 44.0e6) <= 0.01 * 44.0e6


@pytest.mark.parametrize("kwargs, needle", [
    (dict(coupling="cubic"), "coupling='cubic' is not supported; allowed values: additive, affine"),
    (dict(permutation="random"), "permutation='random' is not supported; allowed values: reverse"),
    (dict(architecture="nice"), "architecture='nice' is not supported; allowed values: glow"),
    (dict(image_shape=(3, 20, 20), levels=3), "divisible by 8"),
    (dict(levels=0), "levels must be a positive integer"),
    (dict(image_shape=(3, 32)), "image_shape must be (C, H, W)"),
    (dict(affine_clamp=-1.0), "affine_clamp must be a number >= 0"),
    (dict(scale_fn="exp"), "scale_fn='exp' is not supported; allowed values: sigmoid"),
    (dict(scale_fn="softclamp"), "scale_fn=softclamp needs affine_clamp > 0"),
    (dict(affine_form="exp"), "affine_form='exp' is not supported; allowed values: shift_scale"),
    (dict(realnvp=dict(flow_norm="layernorm")), "realnvp.flow_norm='layernorm' is not"),
    (dict(realnvp=dict(logit_alpha=0.5)), "realnvp.logit_alpha must be a number in [0, 0.5)"),
    (dict(stepz=3), "unknown flow setting(s) stepz"),
])
def test_bad_construction_raises_value_error(kwargs, needle):
    with pytest.raises(ValueError) as err:
        build_flow(**{**dict(image_shape=(3, 32, 32), levels=2, steps=1, hidden_channels=4),
                      **kwargs})
    assert needle in str(err.value)


def test_wrong_channel_count_at_call():
    m = build_flow((3, 16, 16), levels=2, steps=1, hidden_channels=4)
    with pytest.raises(ValueError, match=r"image_shape=\(3, 16, 16\)"):
        m.log_prob(torch.zeros(2, 1, 16, 16))
