"""Per-image preprocessing: decode, check mode and size, resize, pad, reduce bits, crop and flip.

Geometry follows the openai/glow code (Kingma & Dhariwal 2018, Appendix; Dinh et al. 2017 for
LSUN): MNIST is zero-padded 28 → 32, LSUN is resized so its shorter side is 96 and cropped to 64
(random crops for training, the centre crop for evaluation), CelebA-HQ is resized to 256.

An image passes through two stages. ``decode`` is deterministic and gives the *stored* view,
uint8 bins of shape (C, S, S); small datasets keep it in memory. A ``View`` then maps the stored
view to what the flow sees, (C, H, W): random crops, shifts and flips for training (torch's global
generator, which DataLoader workers seed per worker), the centre crop for evaluation. Both take
and return uint8 tensors.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from glow_lightning.errors import DataError
from glow_lightning.ops import check_n_bits, reduce_bits

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
RESAMPLE = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class ImageSpec:
    """How raw images of one dataset become n-bit bins of shape ``image_shape``.

    ``size`` is the side raw images must have when ``resize`` is None (None: any size);
    ``short_side`` resizes the shorter side and keeps the centre square (LSUN); ``crop`` is the
    side of the training random crop / evaluation centre crop; ``shift`` and ``flip`` are
    training-only augmentations.
    """

    dataset: str
    mode: Literal["L", "RGB"]
    size: int | None = None
    resize: int | None = None
    short_side: int | None = None
    pad: int = 0
    crop: int | None = None
    shift: int = 0
    flip: bool = False
    tile: bool = False
    convert_mode: bool = False
    n_bits: int = 8

    def __post_init__(self) -> None:
        check_n_bits(self.n_bits)

    @property
    def channels(self) -> int:
        return 3 if self.mode == "RGB" or self.tile else 1

    @property
    def stored_shape(self) -> tuple[int, int, int]:
        """(C, S, S) of the decoded image, before crops."""
        return self.channels, self.stored_side, self.stored_side

    @property
    def stored_side(self) -> int:
        """Side of the stored (decoded, padded) square image."""
        side = self.short_side or self.resize or self.size
        if side is None:
            raise ValueError(f"{self.dataset}: set image_size to fix the image side")
        return side + 2 * self.pad

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) as the flow sees it."""
        side = self.crop or self.stored_side
        return self.channels, side, side


def _where(split: str, index: int, path: str | None) -> str:
    return f"image {index} of the {split} split" + (f" ({path})" if path else "")


def open_image(value: Any, split: str, index: int) -> Image.Image:
    """A PIL image from whatever an image column holds: {bytes, path}, bytes, a path, PIL, array."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray | list):
        return Image.fromarray(np.asarray(value, dtype=np.uint8))
    data, path = value, None
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    elif isinstance(value, str):
        data, path = None, value
    try:
        if not data and not path:
            raise ValueError("the image value is empty")
        with Image.open(io.BytesIO(data) if data else str(path)) as img:
            img.load()
            return img
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"could not decode {_where(split, index, path)}: {reason}; "
            "remove or replace that file"
        ) from exc


def check_mode(img: Image.Image, spec: ImageSpec, split: str, index: int) -> Image.Image:
    """Convert to ``spec.mode``; RGBA/palette → RGB is silent, grayscale ↔ colour needs opt-in."""
    if img.mode == spec.mode:
        return img
    gray_to_rgb = spec.mode == "RGB" and img.mode in GRAY_MODES
    rgb_to_gray = spec.mode == "L" and img.mode not in GRAY_MODES and img.mode != "P"
    if (gray_to_rgb or rgb_to_gray) and not spec.convert_mode:
        want = "3-channel RGB" if spec.mode == "RGB" else "1-channel grayscale (L)"
        got = f"{img.mode} (grayscale)" if img.mode in GRAY_MODES else f"{img.mode} (colour)"
        raise DataError(
            f"{spec.dataset} expects {want} images but {_where(split, index, None)} is {got}; "
            "convert the data or set data.convert_mode=true"
        )
    return img.convert(spec.mode)


def check_size(img: Image.Image, spec: ImageSpec, split: str, index: int) -> Image.Image:
    """Resize as the spec asks, or insist on the raw size the dataset is defined at."""
    if spec.short_side is not None:
        return resize_short_side(img, spec.short_side)
    if spec.resize is not None:
        side = spec.resize
        return img if img.size == (side, side) else img.resize((side, side), RESAMPLE)
    if spec.size is not None and img.size != (spec.size, spec.size):
        w, h = img.size
        raise DataError(
            f"{spec.dataset} expects {spec.size}x{spec.size} images but "
            f"{_where(split, index, None)} is {w}x{h}; set data.image_size={spec.size} to resize"
        )
    return img


def resize_short_side(img: Image.Image, side: int) -> Image.Image:
    """Resize so the shorter side is ``side``, then keep the centre ``side`` × ``side`` square."""
    w, h = img.size
    scale = side / min(w, h)
    new_w, new_h = max(side, round(w * scale)), max(side, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), RESAMPLE)
    left, top = (new_w - side) // 2, (new_h - side) // 2
    return img.crop((left, top, left + side, top + side))


def load_pixels(value: Any, spec: ImageSpec, split: str, index: int) -> np.ndarray:
    """One raw image → checked, resized pixels, uint8 (S, S, 1) or (S, S, 3)."""
    img = open_image(value, split, index)
    img = check_size(check_mode(img, spec, split, index), spec, split, index)
    array = np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy shares it)
    return array.reshape(*array.shape[:2], -1)


def finish(pixels: Tensor, spec: ImageSpec) -> Tensor:
    """Pixels uint8 (..., S, S, C) → stored bins uint8 (..., C, S + 2·pad, S + 2·pad)."""
    x = pixels.movedim(-1, -3)  # (..., C, S, S)
    if spec.pad:
        x = F.pad(x, (spec.pad,) * 4)  # zeros stay zero bins at any n_bits
    if spec.tile and x.shape[-3] == 1:
        x = x.expand(*x.shape[:-3], 3, -1, -1)
    return reduce_bits(x, spec.n_bits).to(torch.uint8).contiguous()


def decode(value: Any, spec: ImageSpec, split: str, index: int) -> Tensor:
    """One raw image → stored bins, uint8 (C, S, S) in [0, 2^n_bits)."""
    return finish(torch.from_numpy(load_pixels(value, spec, split, index)), spec)


def random_crop(x: Tensor, side: int, generator: torch.Generator | None = None) -> Tensor:
    """A random ``side`` × ``side`` window of ``x`` (C, H, W)."""
    top = int(torch.randint(x.shape[-2] - side + 1, (), generator=generator))
    left = int(torch.randint(x.shape[-1] - side + 1, (), generator=generator))
    return x[..., top : top + side, left : left + side]


def centre_crop(x: Tensor, side: int) -> Tensor:
    """The centre ``side`` × ``side`` window of ``x`` (C, H, W)."""
    top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
    return x[..., top : top + side, left : left + side]


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift ``x`` (C, H, W) by up to ``max_shift`` pixels each way, filling with zeros."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (max_shift,) * 4)  # (C, H + 2s, W + 2s)
    top, left = torch.randint(2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[..., top : top + height, left : left + width]


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Mirror ``x`` (C, H, W) left-right with probability 1/2."""
    return x.flip(-1) if bool(torch.rand((), generator=generator) < 0.5) else x


class View:
    """Callable stored → seen view for one split; picklable, so it works in DataLoader workers.
    Random views draw from ``generator`` (else torch's global generator)."""

    def __init__(self, spec: ImageSpec, train: bool) -> None:
        self.spec, self.train = spec, train

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        spec = self.spec
        if spec.crop is not None:
            x = random_crop(x, spec.crop, generator) if self.train else centre_crop(x, spec.crop)
        if self.train and spec.shift:
            x = random_shift(x, spec.shift, generator)
        if self.train and spec.flip:
            x = random_flip(x, generator)
        return x.contiguous()
