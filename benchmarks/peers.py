"""Glow built three ways behind one small interface: ours, normflows and FrEIA.

Every implementation is built at the closest architecture its library expresses to ours (L levels
of squeeze → K steps → split, coupling net conv3×3 → ReLU → conv1×1 → ReLU → zero conv3×3 of
width ``hidden``) and exposes ``nll(x)`` (per-sample −log p(x) in nats on dequantised pixels in
[-0.5, 0.5), shape (B,)) and ``sample(n, temperature)``. Differences the peers cannot express:

* normflows: split latents get a learned per-channel Gaussian (``GlowBase``) rather than a prior
  conditioned on the kept half; the coupling net is ``ConvNet2d`` with ActNorm after its hidden
  convs (``net_actnorm=True``), as in ours.
* FrEIA, built from its own parts as a Glow (its strongest construction on these digits, stronger
  than one ``AllInOneBlock`` per step): ``ActNorm`` → ``Fixed1x1Conv`` (a random orthogonal
  matrix, not learned) → ``AffineCouplingOneSided`` (soft clamp ``2·0.636·atan(s/2)``, subnet
  conv3×3 → ReLU → conv1×1 → ReLU → zero-initialised conv3×3, no ActNorm inside), squeezes by
  ``IRevNetDownsampling``, ``Split`` between levels; every latent has a standard normal prior.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from glow_lightning.flows import build_flow

LOG_2PI = math.log(2 * math.pi)
# Our Glow's switches for the equal-budget runs at width 128 (``model.*`` keys of the same
# names): the soft-clamped symmetric log-scale, x·e^s + t, no ActNorm inside the coupling nets.
TUNED = dict(scale_fn="softclamp", affine_clamp=2.0, affine_form="scale_shift",
             net_actnorm=False)
ROOT = Path(__file__).resolve().parents[1]
PEERS = ("normflows", "freia")


@dataclass
class Impl:
    """An implementation under test: its model, per-sample NLL and sampler."""

    name: str
    model: nn.Module
    nll: Callable[[Tensor], Tensor]
    sample: Callable[[int, float], Tensor]

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def ours(shape: tuple[int, int, int], levels: int, steps: int, hidden: int,
         memory_saving: bool = False, name: str = "glow-lightning", model: nn.Module | None = None,
         **kwargs) -> Impl:
    flow = model if model is not None else build_flow(
        shape, levels=levels, steps=steps, hidden_channels=hidden, memory_saving=memory_saving,
        **kwargs)
    return Impl(name, flow, lambda x: -flow.log_prob(x), lambda n, t: flow.sample(n, t))


def normflows(shape: tuple[int, int, int], levels: int, steps: int, hidden: int) -> Impl:
    """normflows' Glow example: ``GlowBlock``, ``Squeeze`` and ``Merge`` in a ``MultiscaleFlow``."""
    import normflows as nf

    c, h, w = shape
    q0, merges, flows = [], [], []
    for i in range(levels):  # i = 0 is the coarsest level (normflows runs noise → data)
        channels = c * 2 ** (levels + 1 - i)
        level = [nf.flows.GlowBlock(channels, hidden, split_mode="channel", scale=True,
                                    net_actnorm=True) for _ in range(steps)]
        flows.append([*level, nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
        else:
            latent = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
        q0.append(nf.distributions.GlowBase(latent))
    model = nf.MultiscaleFlow(q0, flows, merges, class_cond=False)

    def sample(n: int, temperature: float) -> Tensor:
        return model.sample(n, temperature=temperature)[0]

    return Impl("normflows", model, lambda x: -model.log_prob(x, None), sample)


def _freia_subnet(hidden: int) -> Callable[[int, int], nn.Module]:
    def make(c_in: int, c_out: int) -> nn.Module:
        last = nn.Conv2d(hidden, c_out, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        return nn.Sequential(nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(hidden, hidden, 1), nn.ReLU(), last)

    return make


def freia(shape: tuple[int, int, int], levels: int, steps: int, hidden: int) -> Impl:
    """FrEIA's multi-scale ``GraphINN`` of Glow steps (see the module docstring)."""
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    gen = torch.Generator().manual_seed(0)
    nodes = [Ff.InputNode(*shape, name="input")]
    side = []
    for level in range(levels):
        nodes.append(Ff.Node(nodes[-1], Fm.IRevNetDownsampling, {}))
        ch = nodes[-1].output_dims[0][0]
        for _ in range(steps):
            nodes.append(Ff.Node(nodes[-1], Fm.ActNorm, {}))
            q, _ = torch.linalg.qr(torch.randn(ch, ch, generator=gen))
            nodes.append(Ff.Node(nodes[-1], Fm.Fixed1x1Conv, {"M": q}))
            nodes.append(Ff.Node(nodes[-1], Fm.AffineCouplingOneSided,
                                 {"subnet_constructor": _freia_subnet(hidden), "clamp": 2.0,
                                  "clamp_activation": "ATAN"}))
        if level < levels - 1:
            nodes.append(Ff.Node(nodes[-1], Fm.Split, {"section_sizes": [ch // 2, ch - ch // 2],
                                                       "dim": 0}))
            side.append(Ff.Node(nodes[-1].out1, Fm.Flatten, {}))
    nodes.append(Ff.Node(nodes[-1], Fm.Flatten, {}))
    nodes.append(Ff.Node([nodes[-1].out0] + [s.out0 for s in side], Fm.Concat, {"dim": 0}))
    nodes.append(Ff.OutputNode(nodes[-1], name="output"))
    inn = Ff.GraphINN(nodes + side)
    dims = shape[0] * shape[1] * shape[2]

    def nll(x: Tensor) -> Tensor:
        z, log_jac = inn(x)
        return 0.5 * (z.square().sum(1) + dims * LOG_2PI) - log_jac

    def sample(n: int, temperature: float) -> Tensor:
        z = temperature * torch.randn(n, dims)
        return inn(z, rev=True)[0]

    return Impl("FrEIA", inn, nll, sample)


def previous_flows(rev: str) -> Any:
    """``glow_lightning.flows`` as it stood at git revision ``rev`` of this repository, imported
    as ``glow_lightning_prev.flows`` beside the current package (the old tree is exported to a
    temporary folder with its imports renamed), so both run interleaved in one process."""
    import importlib
    import subprocess
    import sys
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="glow-prev-"))
    archive = subprocess.run(["git", "archive", rev, "glow_lightning"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    package = target / "glow_lightning"
    for path in package.rglob("*.py"):
        path.write_text(path.read_text().replace("glow_lightning", "glow_lightning_prev"))
    package.rename(target / "glow_lightning_prev")
    sys.path.insert(0, str(target))
    return importlib.import_module("glow_lightning_prev.flows")


def ours_at(rev: str, shape: tuple[int, int, int], levels: int, steps: int, hidden: int) -> Impl:
    """Our Glow as built by the code at git revision ``rev`` (for before/after comparisons)."""
    flow = previous_flows(rev).build_flow(shape, levels=levels, steps=steps,
                                          hidden_channels=hidden)
    return Impl(f"glow-lightning@{rev}", flow, lambda x: -flow.log_prob(x),
                lambda n, t: flow.sample(n, t))


def autocast_bf16(impl: Impl) -> Impl:
    """``impl`` with its NLL and sampler run under ``torch.autocast(bfloat16)``: the one-line
    mixed precision a user of a peer library would reach for (it also puts the peer's 1×1 convs
    and transforms in bfloat16, which ours keeps in float32)."""
    device = next(impl.model.parameters()).device.type

    def nll(x: Tensor) -> Tensor:
        with torch.autocast(device, dtype=torch.bfloat16):
            return impl.nll(x).float()

    def sample(n: int, temperature: float) -> Tensor:
        with torch.autocast(device, dtype=torch.bfloat16):
            return impl.sample(n, temperature).float()

    return Impl(f"{impl.name} (bf16 autocast)", impl.model, nll, sample)


def build(name: str, shape: tuple[int, int, int], levels: int, steps: int, hidden: int,
          **kwargs) -> Impl:
    """Build ``name`` ∈ {ours, ours-tuned (``TUNED``), ours-tuned-netactnorm (``TUNED`` with
    ActNorm in the nets), ours-tuned-stdprior (``TUNED`` with standard normal split and top
    priors), ours-bf16 (bfloat16 coupling nets), ours-ms (memory saving),
    ours@REV (the code at git revision REV), normflows, freia, normflows-bf16, freia-bf16
    (under bfloat16 autocast)}."""
    if name.startswith("ours@"):
        return ours_at(name.removeprefix("ours@"), shape, levels, steps, hidden)
    if name == "ours":
        return ours(shape, levels, steps, hidden, **kwargs)
    if name == "ours-bf16":
        return ours(shape, levels, steps, hidden, net_dtype="bfloat16",
                    name="glow-lightning (bf16 nets)", **kwargs)
    if name.endswith("-bf16"):
        return autocast_bf16(build(name.removesuffix("-bf16"), shape, levels, steps, hidden))
    if name == "ours-tuned":  # soft clamp, x·e^s + t, plain biased convs in the coupling nets
        return ours(shape, levels, steps, hidden, **TUNED, name="glow-lightning (tuned)",
                    **kwargs)
    if name == "ours-tuned-netactnorm":  # the same with the reference nets' ActNorm
        return ours(shape, levels, steps, hidden, **{**TUNED, "net_actnorm": True},
                    name="glow-lightning (tuned, net ActNorm)", **kwargs)
    if name == "ours-tuned-stdprior":  # the same with every latent under N(0, I), as FrEIA's
        return ours(shape, levels, steps, hidden, **TUNED, learn_top=False, split_prior=False,
                    name="glow-lightning (tuned, N(0, I) priors)", **kwargs)
    if name == "ours-ms":
        return ours(shape, levels, steps, hidden, memory_saving=True,
                    name="glow-lightning (memory saving)", **kwargs)
    return {"normflows": normflows, "freia": freia}[name](shape, levels, steps, hidden)
