"""The multi-scale architecture shared by Glow and RealNVP (RealNVP Sec. 3.6; Glow Figure 2b).

Each level is a :class:`FlowSequence` followed (except at the last level) by a split that factors
out half of the channels under a prior conditioned on the kept half. Nothing is dropped: ``encode``
returns every factored-out latent plus the top latent, and ``decode`` is its exact inverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from glow_lightning.flows.priors import SplitPrior, TopPrior, gaussian_log_prob, gaussian_sample
from glow_lightning.flows.sequential import FlowSequence


@dataclass
class FlowOutput:
    """Result of a full forward pass: ``log_prob`` (B,), ``latents``, class ``logits`` or None,
    and where the density comes from, per level ``i`` (finest first): ``logdets[i]``, the
    log-det of level ``i``'s flow, and ``priors[i]``, the log-density of the latent it factors
    out (the top prior's at the last level); each (B,), and
    ``log_prob == sum(logdets) + sum(priors)``."""

    log_prob: Tensor
    latents: list[Tensor]
    logits: Tensor | None
    logdets: list[Tensor]
    priors: list[Tensor]


class Split(nn.Module):
    """Keep the first half of the channels, factor out the second half under ``prior``."""

    def __init__(self, channels: int, learned_prior: bool) -> None:
        super().__init__()
        self.kept = channels // 2
        self.prior = SplitPrior(self.kept, channels - self.kept, learned_prior)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, C, H, W) → kept (B, C/2, H, W), latent (B, C/2, H, W), log p(latent | kept)."""
        kept, out = h[:, : self.kept], h[:, self.kept :]
        mean, logs = self.prior.params(kept)
        return kept, out, gaussian_log_prob(out, mean, logs)

    def inverse(self, kept: Tensor, latent: Tensor | None, temperature: float = 1.0,
                generator: torch.Generator | None = None) -> Tensor:
        if latent is None:
            mean, logs = self.prior.params(kept)
            latent = gaussian_sample(mean, logs, temperature, generator)
        return torch.cat([kept, latent], dim=1)


class MultiScaleFlow(nn.Module):
    """A stack of levels with split priors, a top prior and an optional auxiliary classifier."""

    def __init__(self, image_shape: tuple[int, int, int], levels: list[FlowSequence],
                 splits: list[Split | None], top_shape: tuple[int, int, int], learn_top: bool,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.levels = nn.ModuleList(levels)
        self.splits = nn.ModuleList([s if s is not None else nn.Identity() for s in splits])
        self.top_prior = TopPrior(top_shape, learn_top, num_classes)
        self.num_classes = num_classes
        self.classifier = nn.Linear(top_shape[0], num_classes) if num_classes else None
        if self.classifier is not None:
            self.classifier.weight.data.zero_()
            self.classifier.bias.data.zero_()

    @property
    def num_dims(self) -> int:
        c, h, w = self.image_shape
        return c * h * w

    def _check(self, x: Tensor) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(
                f"input has shape {tuple(x.shape[1:])} per image but the flow was built for "
                f"image_shape={self.image_shape}; rebuild with the right image_shape")

    def _encode(self, x: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """x (B, C, H, W) → (latents, per-level log-dets, per-split prior log-probs)."""
        self._check(x)
        latents, logdets, split_lps = [], [], []
        h = x
        for level, split in zip(self.levels, self.splits, strict=True):
            h, ld = level(h)
            logdets.append(ld)
            if isinstance(split, Split):
                h, z, lp = split(h)
                latents.append(z)
                split_lps.append(lp)
        latents.append(h)
        return latents, logdets, split_lps

    def encode(self, x: Tensor) -> list[Tensor]:
        """Every factored-out latent (finest first) plus the top latent."""
        return self._encode(x)[0]

    def forward(self, x: Tensor, y: Tensor | None = None) -> FlowOutput:
        latents, logdets, priors = self._encode(x)
        top = latents[-1]
        mean, logs = self.top_prior.params(x.shape[0], y, top)
        priors = [*priors, gaussian_log_prob(top, mean, logs)]
        log_prob = torch.stack([*logdets, *priors]).sum(0)
        logits = self.classifier(top.mean(dim=(2, 3))) if self.classifier is not None else None
        return FlowOutput(log_prob, latents, logits, logdets, priors)

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x) (or log p(x | y)) in nats, shape (B,)."""
        return self(x, y).log_prob  # through __call__, so a compiled forward is used

    def decode(self, latents: list[Tensor | None], temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Exact inverse of :meth:`encode`; a ``None`` split latent is sampled from its prior."""
        h = latents[-1]
        assert h is not None, "the top latent is required"
        h = h.contiguous(memory_format=torch.channels_last)  # NHWC convolutions throughout
        split_latents = latents[:-1]
        for level, split, i in zip(reversed(self.levels), reversed(self.splits),
                                   reversed(range(len(self.levels))), strict=True):
            if isinstance(split, Split):
                h = split.inverse(h, split_latents[i], temperature, generator)
            h = cast(FlowSequence, level).inverse(h)[0]
        return h.contiguous()

    def _ref(self) -> Tensor:
        return next(self.parameters())

    @torch.inference_mode()
    def sample(self, n: int, temperature: float = 1.0, y: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images (B, C, H, W) at ``temperature`` (0 gives the mode of every prior)."""
        ref = self._ref()
        mean, logs = self.top_prior.params(n, y, ref)
        top = gaussian_sample(mean, logs, temperature, generator)
        nones: list[Tensor | None] = [None] * (len(self.levels) - 1)
        return self.decode([*nones, top], temperature, generator)
