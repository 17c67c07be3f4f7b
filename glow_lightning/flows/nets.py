"""Coupling networks: the Glow net of the reference code and RealNVP's residual net.

``net_dtype`` (``"float32"`` or ``"bfloat16"``) sets the precision the networks compute in. A
coupling network only *parameterises* its transform: the inverse re-evaluates the same network
on the same (unchanged) half, and the log-det is the sum of the log-scales actually applied, so
with bfloat16 networks the flow stays exactly invertible (to float32 rounding of the transform)
with an exact log-det. Whole-model mixed precision (``trainer.precision=bf16-mixed``) would
instead run the 1×1 convs and the transforms themselves in bfloat16, breaking both.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glow_lightning.flows.actnorm import ActNorm

NetDType = Literal["float32", "bfloat16"]
NET_DTYPES = ("float32", "bfloat16")


class _Precision(nn.Module):
    """Base of the coupling networks: their body runs under :meth:`_autocast` (``net_dtype``);
    they hand back the input's dtype."""

    net_dtype: NetDType = "float32"

    @contextlib.contextmanager
    def _autocast(self, x: Tensor) -> Iterator[None]:
        if self.net_dtype == "float32" or x.dtype != torch.float32:
            yield
            return
        if x.device.type == "cpu":
            _warn_if_no_cpu_bfloat16()
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            yield


def cpu_bfloat16_kernels() -> bool:
    """Whether oneDNN has bfloat16 kernels on this CPU (AVX-512 BF16 or AMX). Without them
    bfloat16 convolutions take a generic fallback, several times slower than float32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.cache
def _warn_if_no_cpu_bfloat16() -> None:
    """Once per process: bfloat16 nets on a CPU without :func:`cpu_bfloat16_kernels`."""
    if not cpu_bfloat16_kernels():
        warnings.warn("model.net_dtype=bfloat16: this CPU has no bfloat16 convolution kernels "
                      "(oneDNN needs AVX-512 BF16 or AMX), so the coupling networks run several "
                      "times slower than in float32; use model.net_dtype=float32 on it",
                      stacklevel=4)


def set_net_dtype(model: nn.Module, net_dtype: NetDType) -> None:
    """Set the compute precision (one of ``NET_DTYPES``, checked by the builder) of every
    coupling network inside ``model``."""
    for module in model.modules():
        if isinstance(module, _Precision):
            module.net_dtype = net_dtype


class ZeroConv2d(nn.Module):
    """3×3 conv initialised to zero, output scaled by ``exp(3·logs)`` (openai/glow conv2d_zeros).

    The reference code reads its output interleaved (channels 0, 2, 4, … and 1, 3, 5, …);
    :meth:`halves` returns those two sets as contiguous halves by reordering the (small) weight
    rows instead of the (large) output, with the parameters kept in the reference layout.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        assert self.conv.bias is not None
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.logscale_factor = 3.0

    def _conv(self, x: Tensor, deinterleave: bool) -> Tensor:
        # conv(x)·e^{3·logs} as one conv with the scale folded into weight and bias
        scale = torch.exp(self.logs * self.logscale_factor).view(-1)
        assert self.conv.bias is not None
        weight, bias = self.conv.weight * scale.view(-1, 1, 1, 1), self.conv.bias * scale
        if deinterleave:  # rows 0, 2, 4, … then 1, 3, 5, … (a reshape: cheap in both passes)
            weight = weight.unflatten(0, (-1, 2)).transpose(0, 1).flatten(0, 1)
            bias = bias.view(-1, 2).t().reshape(-1)
        return F.conv2d(x, weight, bias, padding=self.conv.padding)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv(x, False)

    def halves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(out[:, 0::2], out[:, 1::2])`` of :meth:`forward`, each a contiguous channel block.
        Needs an even number of output channels."""
        h = self._conv(x, True)
        a, b = torch.split(h, h.shape[1] // 2, dim=1)  # split: one cat in backward
        return a, b


class ConvActNorm(nn.Module):
    """Bias-free convolution followed by ActNorm (the reference code's ``conv2d``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                              bias=False)
        nn.init.normal_(self.conv.weight, std=0.05)
        self.norm = ActNorm(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if not self.norm.is_initialized:
            return self.norm.apply_forward(self.conv(x))
        # (conv(x, W) + b)·e^s == conv(x, W·e^s) + b·e^s: one conv, no pass over the activations
        scale = torch.exp(self.norm.log_scale()).view(-1)
        return F.conv2d(x, self.conv.weight * scale.view(-1, 1, 1, 1),
                        self.norm.bias.view(-1) * scale, padding=self.conv.padding)


class GlowNet(_Precision):
    """conv3×3 → ReLU → conv1×1 → ReLU → zero conv3×3, as in openai/glow ``f()``."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvActNorm(in_channels, hidden_channels, 3)
        self.conv2 = ConvActNorm(hidden_channels, hidden_channels, 1)
        self.out = ZeroConv2d(hidden_channels, out_channels)

    def hidden(self, x: Tensor) -> Tensor:
        # in-place ReLU is safe: a conv's backward needs its input, not its output
        return F.relu_(self.conv2(F.relu_(self.conv1(x))))

    def forward(self, x: Tensor) -> Tensor:
        with self._autocast(x):
            out = self.out(self.hidden(x))
        return out.to(x.dtype)

    def halves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(out[:, 0::2], out[:, 1::2])`` without strided slicing (see :class:`ZeroConv2d`)."""
        with self._autocast(x):
            a, b = self.out.halves(self.hidden(x))
        return a.to(x.dtype), b.to(x.dtype)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ResNet(_Precision):
    """RealNVP's residual coupling net (Dinh et al. 2016, Sec. 4.1), zero-initialised output."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
                 num_blocks: int = 2) -> None:
        super().__init__()
        self.inp = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden_channels) for _ in range(num_blocks)])
        self.out = ZeroConv2d(hidden_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        with self._autocast(x):
            out = self.out(F.relu(self.blocks(self.inp(x))))
        return out.to(x.dtype)
