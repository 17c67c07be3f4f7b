"""An ablation as data: ``configs/ablation/<name>.yaml`` → :class:`AblationSpec`.

The file names the experiment, the per-cell budget, the number of seeds, the grid and the
overrides shared by every cell (the same model for all cells), e.g.::

    experiment: digits_glow
    budget_steps: 300
    seeds: 2
    overrides: {model.hidden_channels: 32}
    cell_overrides: {realnvp: {model.steps: 2}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from glow_lightning.ablation.grid import COUPLINGS, PERMUTATIONS, Cell, build_grid
from glow_lightning.config import configs_root
from glow_lightning.errors import ConfigError


@dataclass
class AblationSpec:
    name: str = "ablation"
    experiment: str | None = None  # configs/experiment/<name>.yaml; None: the default experiment
    budget_steps: int | None = None  # optimiser steps per cell
    budget_minutes: float | None = None  # wall-clock cap per cell (training only)
    seeds: int = 2
    couplings: list[str] = field(default_factory=lambda: list(COUPLINGS))
    permutations: list[str] = field(default_factory=lambda: list(PERMUTATIONS))
    realnvp: bool = True
    axes: dict[str, list[Any]] = field(default_factory=dict)  # more Glow axes, crossed
    overrides: dict[str, Any] = field(default_factory=dict)  # for every cell
    cell_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per cell name
    claims: list[list[str]] | None = None  # [[a, "<", b], ...]; None: Figure 3's orderings

    def grid(self) -> list[Cell]:
        extra = {name: dict(dotlist(values)) for name, values in self.cell_overrides.items()}
        axes = {key: [dotlist({key: v})[0][1] for v in values] for key, values in self.axes.items()}
        return build_grid(self.couplings, self.permutations, self.realnvp, extra, axes)

    def base_overrides(self) -> list[str]:
        """``experiment=<name>`` (if any) then the shared overrides, as a dotlist."""
        head = [f"experiment={self.experiment}"] if self.experiment else []
        return head + [f"{k}={v}" for k, v in dotlist(self.overrides)]


def dotlist(values: dict[str, Any]) -> list[tuple[str, str]]:
    """``{"model.steps": 4, "trainer.max_time": "00:00:01:00"}`` → [(key, text)] pairs.

    >>> dotlist({"model.learn_top": False, "optim.lr": 0.002})
    [('model.learn_top', 'false'), ('optim.lr', '0.002')]
    """
    def text(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        return "null" if v is None else str(v)

    return [(str(k), text(v)) for k, v in values.items()]


def ablation_names() -> list[str]:
    return sorted(p.stem for p in (configs_root() / "ablation").glob("*.yaml"))


def spec_path(name: str) -> Path:
    """``configs/ablation/<name>.yaml``, or ``name`` itself when it is a path to a YAML file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    shipped = configs_root() / "ablation" / f"{name}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"unknown ablation '{name}'; available: {', '.join(ablation_names())} "
                          "(or pass ablation=<path to a .yaml>)")
    return shipped


def load_spec(name: str) -> AblationSpec:
    """Load and validate an ablation file (unknown keys and wrong types raise ConfigError)."""
    path = spec_path(name)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(AblationSpec), OmegaConf.load(path))
        spec = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config error in {path}: {str(err).splitlines()[0]}") from None
    assert isinstance(spec, AblationSpec)
    if spec.name == "ablation":
        spec.name = path.stem
    for claim in spec.claims or []:
        if len(claim) != 3 or claim[1] != "<":
            raise ConfigError(f"config error in {path}: claims are [lower cell, '<', higher "
                              f"cell], got {claim}")
    return spec
