"""Lightning callbacks that observe a :class:`~glow_lightning.module.GlowModule` and log.

Media (PNG grids) are made on rank zero only, from fixed seeded noise or fixed real test images,
and written under ``<default_root_dir>/media/`` and, when a ``WandbLogger`` is attached, to W&B.
"""

from .factory import build_callbacks
from .grid import make_grid, save_png, to_uint8
from .interpolations import Interpolations, interpolate_images, interpolate_latents
from .levels import LevelBits, level_rows
from .manipulation import AttributeManipulation, apply_direction, attribute_direction
from .reconstruction import ReconstructionCheck
from .samples import SampleGrid
from .summary import RunSummary

__all__ = [
    "AttributeManipulation", "Interpolations", "LevelBits", "ReconstructionCheck", "SampleGrid",
    "RunSummary", "apply_direction", "attribute_direction", "build_callbacks",
    "interpolate_images", "interpolate_latents", "level_rows", "make_grid", "save_png", "to_uint8",
]
