"""Build the callback list from the typed configuration."""

from __future__ import annotations

from lightning.pytorch.callbacks import Callback

from glow_lightning.config import CallbackConfig

from .bpd_summary import BpdSummary
from .interpolations import Interpolations
from .manipulation import AttributeManipulation
from .reconstruction import ReconstructionCheck
from .samples import SampleGrid


def build_callbacks(cfg: CallbackConfig) -> list[Callback]:
    """Sample grids, interpolations, reconstruction check and test bits/dim; with
    ``cfg.enabled`` False only :class:`BpdSummary` (the run's headline number)."""
    callbacks: list[Callback] = [BpdSummary()]
    if not cfg.enabled:
        return callbacks
    return [
        SampleGrid(tuple(cfg.temperatures), cfg.num_samples, cfg.seed, cfg.every_n_epochs),
        Interpolations(cfg.interpolation_pairs, cfg.interpolation_steps, cfg.every_n_epochs),
        ReconstructionCheck(),
        *manipulation(cfg),
        *callbacks,
    ]


def manipulation(cfg: CallbackConfig) -> list[Callback]:
    """:class:`AttributeManipulation` when ``cfg.manipulation_attribute`` (a class id) is set;
    ``cfg.manipulation_source`` optionally names the class to move from."""
    if cfg.manipulation_attribute is None:
        return []
    return [AttributeManipulation(cfg.manipulation_attribute, cfg.manipulation_source,
                                  every_n_epochs=cfg.every_n_epochs)]
