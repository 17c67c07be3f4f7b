"""Random state that must survive a checkpoint, per rank, as plain tensors (weights-only safe).

Training dequantisation noise does not depend on it: :func:`step_seed` derives each batch's noise
from (seed, batch counter, rank), so a resumed run draws exactly the noise of an uninterrupted
one wherever the checkpoint was taken. The global torch generators are saved too (every rank's,
gathered to rank zero, which writes the checkpoint) and restored on each rank when training
restarts, for anything else that draws from them.
"""

from __future__ import annotations

import zlib
from typing import Any

import torch
from torch import Tensor

_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9)
_MASK = 2**63 - 1


def step_seed(seed: int, step: int, rank: int) -> int:
    """A seed for ``(seed, step, rank)``; distinct inputs give unrelated seeds (splitmix64)."""
    value = (seed * _MIX[0] + step) * _MIX[1] + rank
    value ^= value >> 31
    value = (value * _MIX[0]) & (2**64 - 1)
    return (value ^ (value >> 29)) & _MASK


def image_seed(pixels: bytes, draw: int = 0) -> int:
    """A 32-bit seed for one image's eval noise draw ``draw`` (torch's CPU generator keeps only
    a seed's low 32 bits): the pixels' CRC-32, continued over the draw number for draws k > 0.

    >>> image_seed(b"abc") == zlib.crc32(b"abc"), image_seed(b"abc", 1) != image_seed(b"abc")
    (True, True)
    """
    crc = zlib.crc32(pixels)
    return crc if draw == 0 else zlib.crc32(draw.to_bytes(8, "little"), crc)


def step_noise(shape: torch.Size, seed: int, step: int, rank: int, device: torch.device,
               dtype: torch.dtype) -> Tensor:
    """U(0, 1) noise of ``shape`` that depends only on (seed, step, rank)."""
    generator = torch.Generator(device=device).manual_seed(step_seed(seed, step, rank))
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


def local_rng_state() -> Tensor:
    """This process's torch CPU generator state and, with CUDA, the current device's, as one
    uint8 tensor."""
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.append(torch.cuda.get_rng_state())
    return torch.cat(states)


def set_local_rng_state(state: Tensor) -> None:
    """Inverse of :func:`local_rng_state` (a state from a CPU-only run leaves CUDA alone)."""
    cpu = torch.get_rng_state()
    torch.set_rng_state(state[: cpu.numel()].clone())
    rest = state[cpu.numel():]
    if rest.numel() and torch.cuda.is_available():
        torch.cuda.set_rng_state(rest.clone())


def gather_rng_states(trainer: Any | None, device: torch.device) -> list[Tensor]:
    """Every rank's :func:`local_rng_state`, indexed by rank (a collective under DDP: call it on
    all ranks, as Lightning does when it builds a checkpoint)."""
    state = local_rng_state()
    if trainer is None or trainer.world_size == 1:
        return [state]
    gathered = trainer.strategy.all_gather(state.to(device))  # (world, N)
    return [row.cpu() for row in gathered]
