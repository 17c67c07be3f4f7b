"""Build the callback list from the typed configuration."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from glow_lightning.config import CallbackConfig

from .interpolations import Interpolations
from .levels import LevelBits
from .manipulation import AttributeManipulation
from .reconstruction import ReconstructionCheck
from .samples import SampleGrid
from .summary import RunSummary


def build_callbacks(cfg: CallbackConfig) -> list[Callback]:
    """Sample grids, interpolations, reconstruction check, per-level bits and the run summary;
    with ``cfg.enabled`` False only :class:`RunSummary` (the run's headline numbers)."""
    callbacks: list[Callback] = [RunSummary()]
    if not cfg.enabled:
        return callbacks
    schedule = (cfg.every_n_validations, cfg.every_n_steps)
    return [
        SampleGrid(tuple(cfg.temperatures), cfg.num_samples, cfg.seed, *schedule),
        Interpolations(cfg.interpolation_pairs, cfg.interpolation_steps, *schedule),
        ReconstructionCheck(),
        LevelBits(),
        *manipulation(cfg),
        *callbacks,
    ]


def manipulation(cfg: CallbackConfig) -> list[Callback]:
    """:class:`AttributeManipulation` when ``cfg.manipulation_attribute`` (a class id) is set;
    ``cfg.manipulation_source`` optionally names the class to move from."""
    if cfg.manipulation_attribute is None:
        return []
    return [AttributeManipulation(cfg.manipulation_attribute, cfg.manipulation_source,
                                  every_n_validations=cfg.every_n_validations,
                                  every_n_steps=cfg.every_n_steps)]
