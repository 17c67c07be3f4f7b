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
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from glow_lightning.flows.actnorm import ActNorm

NetDType = Literal["float32", "bfloat16"]
NET_DTYPES: tuple[str, ...] = get_args(NetDType)  # the names net_dtype accepts


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
    """conv3×3 → ReLU → conv1×1 → ReLU → zero conv3×3, as in openai/glow ``f()``.

    Returns ``parts`` tensors of ``out_channels`` each; two parts are the reference code's
    interleaved reading (channels 0::2 and 1::2), taken without strided slicing (see
    :class:`ZeroConv2d`). ``actnorm=False`` replaces the hidden convs' ActNorm by a plain bias.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, parts: int = 1,
                 actnorm: bool = True) -> None:
        super().__init__()
        self.parts = parts
        self.conv1 = _hidden_conv(in_channels, hidden_channels, 3, actnorm)
        self.conv2 = _hidden_conv(hidden_channels, hidden_channels, 1, actnorm)
        self.out = ZeroConv2d(hidden_channels, parts * out_channels)

    def hidden(self, x: Tensor) -> Tensor:
        # in-place ReLU is safe: a conv's backward needs its input, not its output
        return F.relu_(self.conv2(F.relu_(self.conv1(x))))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        with self._autocast(x):
            h = self.hidden(x)
            out = self.out.halves(h) if self.parts == 2 else (self.out(h),)
        return tuple(o.to(x.dtype) for o in out)


def _hidden_conv(in_channels: int, out_channels: int, kernel_size: int, actnorm: bool
                 ) -> nn.Module:
    if actnorm:
        return ConvActNorm(in_channels, out_channels, kernel_size)
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class WNConv2d(nn.Module):
    """Weight-normalised convolution (Salimans & Kingma 2016): ``W = g · v / ‖v‖`` per output
    channel. ``g`` is the weight's scale, the parameter RealNVP's L2 penalty acts on.
    ``zero=True`` starts with ``g = 0`` and a zero bias: the output is zero."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 zero: bool = False, bias: bool = True) -> None:
        super().__init__()
        init = nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias)
        self.v = nn.Parameter(init.weight.data)
        self.g = nn.Parameter(torch.zeros(out_channels) if zero
                              else init.weight.data.flatten(1).norm(dim=1))
        self.bias = (nn.Parameter(torch.zeros(out_channels) if zero else init.bias.data)
                     if init.bias is not None else None)
        self.padding = kernel_size // 2

    def weight(self) -> Tensor:
        norm = self.v.flatten(1).norm(dim=1)
        return self.v * (self.g / norm).view(-1, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


def conv(in_channels: int, out_channels: int, kernel_size: int, weight_norm: bool,
         zero: bool = False, bias: bool = True) -> nn.Module:
    """A same-padded convolution, weight-normalised or plain; ``zero``: zero-initialised;
    ``bias=False`` where a batch norm follows (it would cancel the bias)."""
    if weight_norm:
        return WNConv2d(in_channels, out_channels, kernel_size, zero, bias)
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    if zero:
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return layer


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class ResidualBlock(nn.Module):
    """Pre-activation residual block: (BN → ReLU → conv3×3) twice, plus the input. With batch
    norm the convolutions have no bias: every path from them meets a batch norm."""

    def __init__(self, channels: int, weight_norm: bool = True, batch_norm: bool = True) -> None:
        super().__init__()
        self.norm1, self.norm2 = _norm(channels, batch_norm), _norm(channels, batch_norm)
        self.conv1 = conv(channels, channels, 3, weight_norm, bias=not batch_norm)
        self.conv2 = conv(channels, channels, 3, weight_norm, bias=not batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.relu(self.norm1(x)))
        return x + self.conv2(F.relu(self.norm2(h)))


class ResNet(_Precision):
    """RealNVP's coupling network (Dinh et al. 2017, Sec. 4.1): conv3×3 → ``blocks`` residual
    blocks → BN → ReLU → zero-initialised conv3×3, with weight normalisation and batch
    normalisation (each switchable). Returns ``parts`` tensors of ``out_channels`` each."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int,
                 blocks: int = 8, parts: int = 1, weight_norm: bool = True,
                 batch_norm: bool = True) -> None:
        super().__init__()
        self.parts = parts
        self.inp = conv(in_channels, hidden_channels, 3, weight_norm, bias=not batch_norm)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden_channels, weight_norm, batch_norm)
                                      for _ in range(blocks)])
        self.norm = _norm(hidden_channels, batch_norm)
        self.out = conv(hidden_channels, parts * out_channels, 3, weight_norm, zero=True)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        with self._autocast(x):
            out = self.out(F.relu(self.norm(self.blocks(self.inp(x)))))
        return tuple(o.to(x.dtype) for o in torch.chunk(out, self.parts, dim=1))
