"""The ablation grid: Glow Figure 3 (coupling × permutation) plus RealNVP as one more cell.

A cell is a name and the config overrides that define it. Glow cells are crossed:
``{additive, affine} × {reverse, shuffle, invconv}``, and with any further ``axes`` (config keys
with lists of values, e.g. ``model.scale_fn: [sigmoid, softclamp]``); RealNVP fixes its own
couplings (affine, checkerboard then channel masks, alternating) so it is a single cell, never
crossed. The couplings and permutations are names of the flows' own registries
(``glow.COUPLINGS``, ``permutations.PERMUTATIONS``): a name they lack is refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from glow_lightning.flows.glow import COUPLINGS as FLOW_COUPLINGS
from glow_lightning.flows.permutations import PERMUTATIONS as FLOW_PERMUTATIONS
from glow_lightning.flows.registry import pick
from glow_lightning.flows.spec import OWN_SETTINGS

REALNVP = "realnvp"


def registered(key: str, names: Sequence[str], registry: Mapping[str, object]) -> tuple[str, ...]:
    """``names``, each checked against ``registry`` (unknown: ConfigError naming ``key``)."""
    for name in names:
        pick(key, name, registry)
    return tuple(names)


COUPLINGS = tuple(FLOW_COUPLINGS)  # every coupling
# Figure 3's axis: the fixed and the learned mixings (invconv_lu is the same 1×1 conv, LU-stored)
PERMUTATIONS = registered("permutations", ("reverse", "shuffle", "invconv"), FLOW_PERMUTATIONS)


@dataclass(frozen=True)
class Cell:
    """One grid cell: ``name`` (e.g. ``affine-invconv``) and the values that define it."""

    name: str
    architecture: str
    coupling: str
    permutation: str
    extra: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    axes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def permutation_label(self) -> str:
        """What mixes the channels between couplings, as a reader would name it."""
        return "alternating masks" if self.architecture == REALNVP else self.permutation

    def overrides(self) -> list[str]:
        """Dotlist overrides selecting this cell (the values W&B shows as config keys).

        RealNVP ignores ``model.coupling`` and ``model.permutation``; they are set to ``affine``
        and ``reverse`` because its masked couplings are affine and alternate which half changes.
        Its ``model.scale_fn`` and ``model.affine_form`` are its own (``OWN_SETTINGS``), whatever
        the Glow cells share, unless the cell's own overrides say otherwise.
        """
        base = [f"model.architecture={self.architecture}", f"model.coupling={self.coupling}",
                f"model.permutation={self.permutation}"]
        axes = [f"{k}={v}" for k, v in self.axes.items()]
        return base + axes + [f"{k}={v}" for k, v in self.extra.items()]

    def tags(self) -> list[str]:
        return [f"cell:{self.name}", f"architecture:{self.architecture}",
                f"coupling:{self.coupling}", f"permutation:{self.permutation_label}",
                *(f"{axis_name(k)}:{v}" for k, v in self.axes.items())]

    def columns(self) -> dict[str, str]:
        """The cell's axes as flat values (results tables, W&B config keys)."""
        return {"cell": self.name, "architecture": self.architecture,
                "coupling": self.coupling, "permutation": self.permutation_label,
                **{axis_name(k): v for k, v in self.axes.items()}}


def axis_name(key: str) -> str:
    """``model.scale_fn`` → ``scale_fn``: the column and tag name of an axis."""
    return key.rsplit(".", 1)[-1]


def glow_cell(coupling: str, permutation: str, extra: dict[str, str] | None = None,
              axes: dict[str, str] | None = None) -> Cell:
    axes = dict(axes or {})
    name = "-".join([coupling, permutation, *(f"{axis_name(k)}={v}" for k, v in axes.items())])
    return Cell(name, "glow", coupling, permutation, dict(extra or {}), axes)


def realnvp_cell(extra: dict[str, str] | None = None) -> Cell:
    own = {f"model.{key}": value for key, value in OWN_SETTINGS[REALNVP].items()}
    return Cell(REALNVP, REALNVP, "affine", "reverse", {**own, **(extra or {})})


def build_grid(couplings: Sequence[str] = COUPLINGS, permutations: Sequence[str] = PERMUTATIONS,
               realnvp: bool = True, extra: dict[str, dict[str, str]] | None = None,
               axes: Mapping[str, Sequence[str]] | None = None) -> list[Cell]:
    """Every Glow cell (coupling-major order, then the ``axes`` in order) then RealNVP;
    ``extra[name]`` adds overrides to a cell (e.g. ``{"realnvp": {"model.steps": "2"}}``).

    >>> [c.name for c in build_grid()]  # doctest: +NORMALIZE_WHITESPACE
    ['additive-reverse', 'additive-shuffle', 'additive-invconv', 'affine-reverse',
     'affine-shuffle', 'affine-invconv', 'realnvp']
    """
    extra, axes = extra or {}, axes or {}
    couplings = registered("couplings", couplings, FLOW_COUPLINGS)
    permutations = registered("permutations", permutations, FLOW_PERMUTATIONS)
    combos = [dict(zip(axes, values, strict=True))
              for values in itertools.product(*axes.values())]
    cells = [glow_cell(c, p, axes=combo) for c in couplings for p in permutations
             for combo in combos]
    cells = [glow_cell(c.coupling, c.permutation, extra.get(c.name), c.axes) for c in cells]
    return cells + ([realnvp_cell(extra.get(REALNVP))] if realnvp else [])


def select(cells: list[Cell], names: str | None) -> list[Cell]:
    """The cells named in a comma list (grid order kept); all cells when ``names`` is empty."""
    if not names:
        return cells
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {c.name for c in cells}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown cell(s) {', '.join(unknown)}; the grid has: "
                         f"{', '.join(c.name for c in cells)}")
    return [c for c in cells if c.name in wanted]
