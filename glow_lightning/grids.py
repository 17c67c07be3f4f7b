"""Image grids as uint8 arrays and PNG files (Pillow only; no torchvision)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """Float in [0, 1] → uint8 in [0, 255]; NaN → 0, ±inf clipped. Any shape.

    >>> to_uint8(torch.tensor([0.0, 0.5, 1.0, 2.0, float("nan")])).tolist()
    [0, 128, 255, 255, 0]
    """
    x = torch.nan_to_num(images.detach().float().cpu(), nan=0.0)
    return (x.clamp(0.0, 1.0) * 255).round().to(torch.uint8)


def make_grid(images: Tensor, nrow: int = 8, padding: int = 2,
              pad_value: float = 1.0) -> np.ndarray:
    """Tile (N, C, H, W) floats in [0, 1] row-major, ``nrow`` images a row → uint8 (H', W', C).

    With ``k = min(nrow, N)`` columns and ``r = ceil(N / k)`` rows,
    ``H' = r·(H + padding) + padding`` and ``W' = k·(W + padding) + padding``; image ``i`` sits at
    row ``i // k``, column ``i % k``; borders and empty cells hold ``pad_value``.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"make_grid expects a non-empty (N, C, H, W) batch, got {images.shape}")
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding),
                      float(pad_value))
    for i, image in enumerate(images.detach().float().cpu()):
        top, left = padding + (i // cols) * (h + padding), padding + (i % cols) * (w + padding)
        grid[:, top : top + h, left : left + w] = image
    return to_uint8(grid).permute(1, 2, 0).numpy()


def grid_columns(n: int) -> int:
    """Columns of a near-square grid of ``n`` images: ``ceil(√n)``.

    >>> grid_columns(64), grid_columns(10), grid_columns(1)
    (8, 4, 1)
    """
    return max(1, math.ceil(math.sqrt(n)))


def as_image_array(array: np.ndarray) -> np.ndarray:
    """(H, W, 1) → (H, W) so Pillow and W&B read one channel as greyscale; others unchanged."""
    return array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W), (H, W, 1) or (H, W, 3) array as PNG, creating parent folders."""
    if array.dtype != np.uint8:
        raise ValueError(f"save_png expects uint8 pixels, got {array.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(as_image_array(array))).save(path)
    return path
