"""Helpers for flow property tests: parameter randomisation and brute-force Jacobians."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from glow_lightning.flows import ActNorm


@torch.no_grad()
def randomize(module: nn.Module, scale: float = 0.05, seed: int = 1) -> nn.Module:
    """Move every parameter away from its (often zero) init and mark ActNorms initialised."""
    gen = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    for m in module.modules():
        if isinstance(m, ActNorm):
            m.initialized.fill_(True)
    return module


def brute_logdet(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """log|det J| of a per-sample map ``fn`` (B, ...) → (B, D), one Jacobian per sample."""
    out = []
    for xi in x:
        def single(v: Tensor, shape=xi.shape) -> Tensor:
            return fn(v.view(1, *shape)).reshape(-1)

        jac = torch.autograd.functional.jacobian(single, xi.reshape(-1))
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def flat(latents: list[Tensor]) -> Tensor:
    return torch.cat([z.flatten(1) for z in latents], dim=1)
