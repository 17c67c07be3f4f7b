"""Where a checkpoint's held-out bits/dim go, image by image: each test image's bits/dim (the
run's own evaluation noise and weights) and, per learned split prior, the lowest log-scale it
predicts on the image and the bits/dim its prior term costs there; the worst test images are
printed against the range the training digits give, with the norm of the gradient of each one's
bits/dim (in float64: the float32 norm overflows above 1.8e19, which the non-finite guard reads
as an inf gradient).

    python -m benchmarks.prior_scales runs/<run>/checkpoints/last.ckpt --worst 5 --train 1000

Used for benchmarks/RESULTS.md, "Bounded priors".
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import Tensor

from glow_lightning.commands.checkpoint import experiment_of, load_module
from glow_lightning.flows import Split
from glow_lightning.ops import bits_per_dim
from glow_lightning.train.module import GlowModule
from glow_lightning.train.run import build_datamodule


@torch.no_grad()
def per_image(module: GlowModule, bins: Tensor) -> dict[str, Tensor]:
    """bins (N, C, H, W) → per image: ``bpd`` (N,), and per split ``i`` ``logs{i}`` (the lowest
    predicted log-scale) and ``prior{i}`` (the prior term in bits/dim), each (N,)."""
    flow, dims = module.eval_flow(), module.flow.num_dims
    h = module.to_flow_input(bins, module._eval_noise(bins))
    out = {"bpd": bits_per_dim(flow(h).log_prob, dims, module.n_bits)}
    for i, (level, split) in enumerate(zip(flow.levels, flow.splits, strict=True)):
        h, _ = level(h)
        if isinstance(split, Split):
            h, _, log_p = split(h)
            out[f"logs{i}"] = split.prior.params(h)[1].flatten(1).min(1).values
            out[f"prior{i}"] = -log_p / (dims * math.log(2))
    return out


def grad_norm(module: GlowModule, bins: Tensor) -> float:
    """The L2 norm, in float64, of the gradient of ``bins``' (1, C, H, W) bits/dim w.r.t. the
    evaluated weights."""
    flow = module.eval_flow().double()
    x = module.to_flow_input(bins, module._eval_noise(bins)).double()
    params = [q for q in flow.parameters()]
    for q in params:
        q.requires_grad_(True)
    bpd = bits_per_dim(flow(x).log_prob, module.flow.num_dims, module.n_bits).sum()
    grads = torch.autograd.grad(bpd, params, allow_unused=True)
    flow.float()
    return math.sqrt(sum(float((g * g).sum()) for g in grads if g is not None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("ckpt")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. data.cache_dir=...")
    p.add_argument("--worst", type=int, default=5)
    p.add_argument("--train", type=int, default=1000, help="training digits for the range")
    args = p.parse_args()
    module = load_module(args.ckpt)
    dm = build_datamodule(experiment_of(module, args.overrides))
    dm.setup("fit")
    test = per_image(module, dm.example_images(10**6, split="test")[0])
    train = per_image(module, dm.example_images(args.train, split="train")[0])
    splits = sorted(k[4:] for k in test if k.startswith("logs"))
    bpd = test["bpd"]
    print(f"test: {bpd.numel()} images, mean {float(bpd.mean()):.4f}, median "
          f"{float(bpd.median()):.4f}; train ({train['bpd'].numel()} images): mean "
          f"{float(train['bpd'].mean()):.4f}")
    for i in splits:
        low = train[f"logs{i}"]
        print(f"split {i}: lowest predicted log-scale, train min {float(low.min()):.2f}"
              f" / median {float(low.median()):.2f}; test median "
              f"{float(test[f'logs{i}'].median()):.2f}")
    for j in bpd.argsort(descending=True)[: args.worst].tolist():
        parts = ", ".join(f"split {i}: log-scale {float(test[f'logs{i}'][j]):.2f}, prior "
                          f"{float(test[f'prior{i}'][j]):.2f}" for i in splits)
        norm = grad_norm(module, dm.example_images(j + 1, split="test")[0][j:])
        print(f"test image {j}: {float(bpd[j]):.2f} bits/dim ({parts}); gradient norm "
              f"{norm:.3g}")
    norms = [grad_norm(module, b[None]) for b in dm.example_images(5, split="train")[0]]
    print("first 5 training digits, gradient norms: " + ", ".join(f"{n:.3g}" for n in norms))


if __name__ == "__main__":
    main()
