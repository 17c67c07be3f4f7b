"""The sampling benchmark loads our flow from a Lightning-style checkpoint (``flow.`` keys)."""

import torch

from benchmarks.bench_sample import arch_from, load_checkpoint_flow
from glow_lightning.flows import build_flow
from tests.flow_utils import randomize

SPEC = dict(levels=2, steps=2, hidden_channels=8)


def test_checkpoint_round_trip_into_the_sampling_benchmark(tmp_path):
    torch.manual_seed(0)
    flow = randomize(build_flow((3, 16, 16), **SPEC, seed=3), 0.05)
    ckpt = {"state_dict": {f"flow.{k}": v for k, v in flow.state_dict().items()}
            | {"metrics.train_bpd.total": torch.tensor(1.0)},
            "hyper_parameters": {"image_shape": [3, 16, 16], "model": SPEC, "n_bits": 8,
                                 "num_classes": 0, "seed": 3}}
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    loaded = load_checkpoint_flow(path)
    x = torch.rand(2, 3, 16, 16) - 0.5
    assert not loaded.training
    assert torch.equal(loaded.log_prob(x), flow.eval().log_prob(x))
    assert arch_from(loaded) == ((3, 16, 16), dict(levels=2, steps=2, hidden=8))
    assert loaded.sample(4, 0.7).shape == (4, 3, 16, 16)
