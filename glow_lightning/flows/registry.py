"""Named choices: every choice of a flow (``permutation``, ``scale_fn``, ...) is a dict
from its names to what builds it, kept beside the classes it names; validation, the builders,
the ablation grid and the help text all read that one dict.

>>> pick("permutation", "shuffle", {"reverse": 1, "shuffle": 2})
2
>>> try:
...     pick("permutation", "lu", {"reverse": 1, "shuffle": 2})
... except ConfigError as err:
...     print(err)
permutation='lu' is not supported; allowed values: reverse, shuffle
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from glow_lightning.errors import ConfigError

T = TypeVar("T")


def pick(key: str, name: object, registry: Mapping[str, T]) -> T:
    """``registry[name]``; an unknown name raises :class:`ConfigError` naming ``key`` and the
    allowed names."""
    if not isinstance(name, str) or name not in registry:
        raise ConfigError(f"{key}={name!r} is not supported; allowed values: "
                          f"{', '.join(registry)}")
    return registry[name]
