"""Lightning callbacks that observe a flow module (:class:`FlowModule`) and log.

Media (PNG grids) are made on rank zero only, from fixed seeded noise or fixed real test images,
and written under ``<default_root_dir>/media/`` and, when a ``WandbLogger`` is attached, to W&B.
"""

from .factory import build_callbacks
from .inputs import FlowModule
from .interpolations import Interpolations
from .levels import LevelBits, level_rows
from .manipulation import AttributeManipulation
from .per_image import PerImageBits
from .reconstruction import ReconstructionCheck
from .samples import SampleGrid
from .summary import RunSummary

__all__ = [
    "AttributeManipulation", "FlowModule", "Interpolations", "LevelBits", "PerImageBits",
    "ReconstructionCheck", "RunSummary", "SampleGrid", "build_callbacks", "level_rows",
]
