"""ActNorm followed by a 1×1 convolution, evaluated as one affine map (same function, fewer ops).

``z = W · ((x + b) ⊙ e^s)`` equals ``W' x + c`` with ``W' = W · diag(e^s)`` and ``c = W (b ⊙ e^s)``,
and the log-det is the sum of both layers' log-dets, so the pair costs one matrix product over
the activations instead of an elementwise pass plus a convolution (and the same saving again in
backward). The inverse is ``x = diag(e^-s) W⁻¹ z − b``. The weights are folded per call (C × C
work), so gradients reach ``b``, ``s`` and ``W`` exactly as through the two layers.

On channels-last activations (every Glow level after its squeeze) the product runs as one
``addmm`` on the (B·H·W, C) view, with no copy; other layouts use a 1×1 convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from glow_lightning.flows.actnorm import ActNorm
from glow_lightning.flows.permutations import InvConv
from glow_lightning.flows.squeeze import is_channels_last


def forward(norm: ActNorm, conv: InvConv, x: Tensor) -> tuple[Tensor, Tensor]:
    """``conv(norm(x))`` and the sum of both log-dets, (B,)."""
    weight, logdet_w = conv.weight_and_logdet()
    logs = norm.log_scale().view(-1)
    scale = torch.exp(logs)
    folded = weight * scale  # columns scaled: W · diag(e^s)
    bias = weight @ (norm.bias.view(-1) * scale)
    logdet = (logs.sum() + logdet_w) * (x.shape[2] * x.shape[3])
    return _affine(x, folded, bias), logdet.expand(x.shape[0])


def inverse(norm: ActNorm, conv: InvConv, y: Tensor) -> tuple[Tensor, Tensor]:
    """``norm.inverse(conv.inverse(y))`` and its log-det (B,), minus the forward's."""
    weight, logdet_w = conv.weight_and_logdet()
    logs = norm.log_scale()
    folded = conv.inverse_weight(weight) * torch.exp(-logs).view(-1, 1)  # diag(e^-s) · W⁻¹
    logdet = -(logs.sum() + logdet_w) * (y.shape[2] * y.shape[3])
    return _affine(y, folded, -norm.bias.view(-1)), logdet.expand(y.shape[0])


def _affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Per-pixel ``weight @ x[:, :, i, j] + bias`` of a (B, C, H, W) tensor."""
    if not is_channels_last(x):
        return F.conv2d(x, weight[:, :, None, None], bias)
    b, c, h, w = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(-1, c)  # a view of the NHWC memory
    out = torch.addmm(bias, rows, weight.t())
    return out.view(b, h, w, -1).permute(0, 3, 1, 2)  # channels-last again
