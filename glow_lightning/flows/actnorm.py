"""Activation normalisation (Glow, Kingma & Dhariwal 2018, Sec. 3.1).

Per-channel affine ``z = (x + b) · exp(logs)`` whose parameters are initialised from the first
batch so that the output has zero mean and unit variance per channel. ``initialized`` is a buffer,
so a checkpoint restores it and a resumed run never re-initialises. Once the buffer has been seen
true, a plain Python mirror answers the per-step "initialised?" question, so the hot path reads no
tensor (no ``bool(tensor)``, no graph break under ``torch.compile``); loading a state dict refreshes
the mirror from the buffer, which stays the source of truth.

Data-dependent init is collective-friendly: each layer computes per-channel sums
``[Σx, Σx², n]`` and hands them to a ``reduce`` function (identity by default, an all-reduce under
DDP) set with :func:`data_init`, so every rank ends up with the statistics of the union of batches.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from glow_lightning.flows.base import InvertibleLayer

Reduce = Callable[[Tensor], Tensor]
_REDUCE: contextvars.ContextVar[Reduce | None] = contextvars.ContextVar("actnorm_reduce",
                                                                       default=None)


@contextlib.contextmanager
def data_init(reduce: Reduce | None = None) -> Iterator[None]:
    """Within this context, uninitialised ActNorms reduce their init statistics with ``reduce``.

    ``reduce`` receives a (3, C) tensor of per-channel ``[Σx, Σx², n]`` and must return the sum of
    those tensors over all processes (e.g. ``torch.distributed.all_reduce``).
    """
    token = _REDUCE.set(reduce)
    try:
        yield
    finally:
        _REDUCE.reset(token)


class ActNorm(InvertibleLayer):
    """Per-channel scale and bias with data-dependent init. Input (B, C, H, W) or (B, C).

    ``y = (x + b) · e^s``, log-det ``H · W · Σ_c s_c``; inverse ``x = y · e^-s − b``.
    As in the reference code, the log-scale parameter ``logs`` is stored divided by
    ``logscale_factor`` (3) and applied multiplied by it, so scales learn faster under Adam(ax).

    >>> norm = ActNorm(2)
    >>> x = torch.tensor([[1.0, 2.0], [3.0, 6.0]]).view(2, 2, 1, 1)
    >>> y, logdet = norm(x)  # the first batch initialises: zero mean, unit variance
    >>> y.view(2, 2).round(decimals=4).tolist(), [round(v, 4) for v in logdet.tolist()]  # log ½
    ([[-1.0, -1.0], [1.0, 1.0]], [-0.6931, -0.6931])
    >>> back, inv_logdet = norm.inverse(y)
    >>> torch.allclose(back, x), torch.equal(inv_logdet, -logdet)
    (True, True)
    """

    initialized: Tensor

    def __init__(self, num_channels: int, scale: float = 1.0, eps: float = 1e-6,
                 logscale_factor: float = 3.0) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, num_channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        self.scale = scale
        self.eps = eps
        self.logscale_factor = logscale_factor
        self._seen_initialized = False  # mirror of the buffer, only ever set once it is true
        self.register_load_state_dict_post_hook(_refresh_mirror)

    def log_scale(self) -> Tensor:
        """The per-channel log-scale actually applied, (1, C, 1, 1)."""
        return self.logs * self.logscale_factor

    def _shape(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logs = self.log_scale()
        if x.dim() == 2:
            return self.bias.view(1, -1), logs.view(1, -1)
        return self.bias, logs

    @torch.no_grad()
    def init_from(self, x: Tensor) -> None:
        """Set bias and log-scale from the (reduced) per-channel statistics of ``x``."""
        dims = [0] + list(range(2, x.dim()))
        xd = x.detach().to(torch.float64)
        count = torch.full_like(xd.sum(dim=dims), xd.numel() / xd.shape[1])
        stats = torch.stack([xd.sum(dim=dims), (xd * xd).sum(dim=dims), count])  # (3, C)
        reduce = _REDUCE.get()
        if reduce is not None:
            stats = reduce(stats)
        mean = stats[0] / stats[2]
        var = (stats[1] / stats[2] - mean * mean).clamp_min(0.0)
        logs = torch.log(self.scale / (var.sqrt() + self.eps))
        self.bias.copy_(-mean.view_as(self.bias).to(self.bias.dtype))
        self.logs.copy_((logs / self.logscale_factor).view_as(self.logs).to(self.logs.dtype))
        self.initialized.fill_(True)
        self._seen_initialized = True

    @property
    def is_initialized(self) -> bool:
        """Whether the data-dependent init has run; reads the buffer until it is first true."""
        if not self._seen_initialized:
            self._seen_initialized = bool(self.initialized)
        return self._seen_initialized

    def _maybe_init(self, x: Tensor) -> None:
        if not self.is_initialized:
            self.init_from(x)

    def apply_forward(self, x: Tensor) -> Tensor:
        """Forward without the log-det (used inside coupling networks)."""
        self._maybe_init(x)
        bias, logs = self._shape(x)
        return (x + bias) * torch.exp(logs)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._maybe_init(x)
        bias, logs = self._shape(x)  # the log-scale is formed once for output and log-det
        pixels = x.shape[2] * x.shape[3] if x.dim() == 4 else 1
        return (x + bias) * torch.exp(logs), (logs.sum() * pixels).expand(x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        bias, logs = self._shape(y)
        pixels = y.shape[2] * y.shape[3] if y.dim() == 4 else 1
        return y * torch.exp(-logs) - bias, (-logs.sum() * pixels).expand(y.shape[0])


def _refresh_mirror(module: ActNorm, incompatible_keys: object) -> None:
    module._seen_initialized = bool(module.initialized)


def is_initialised(module: nn.Module) -> bool:
    """Whether every ActNorm inside ``module`` holds its data-dependent init (True without any).
    The one answer to that question: training, callbacks and ``compile_flow`` all ask it."""
    return all(m.is_initialized for m in module.modules() if isinstance(m, ActNorm))
