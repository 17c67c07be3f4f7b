"""Memory-saving backprop (recompute inputs by inversion) gives the same gradients (float64)."""

import pytest
import torch

from glow_lightning.flows import build_flow
from tests.flow_utils import randomize

SPECS = {
    "glow": dict(image_shape=(4, 8, 8), levels=2, steps=3, hidden_channels=8),
    "realnvp": dict(image_shape=(4, 8, 8), levels=2, steps=2, hidden_channels=8,
                    architecture="realnvp"),
}


def _grads(spec, memory_saving, x):
    torch.manual_seed(0)
    m = randomize(build_flow(**spec, memory_saving=memory_saving).double(), 0.05).train()
    loss = -m.log_prob(x).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_memory_saving_gradients_equal_standard(name):
    x = torch.rand(3, 4, 8, 8, dtype=torch.float64) - 0.5
    loss_a, ga = _grads(SPECS[name], False, x)
    loss_b, gb = _grads(SPECS[name], True, x)
    assert torch.allclose(loss_a, loss_b, rtol=1e-12)
    assert ga.keys() == gb.keys()
    for key in ga:
        rel = (ga[key] - gb[key]).norm() / ga[key].norm().clamp_min(1e-30)
        assert rel < 1e-10, (key, rel.item())
