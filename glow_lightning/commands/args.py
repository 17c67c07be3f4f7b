"""The ``key=value`` words of every command: split into the command's own keys and config
overrides, numbers parsed with one-line errors naming the key."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from glow_lightning.errors import ConfigError


def split_keys(words: Sequence[str], own: Collection[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` words → (the command's own keys, the config overrides).

    >>> split_keys(["n=8", "model.steps=4"], {"n"})
    ({'n': '8'}, ['model.steps=4'])
    """
    mine, rest = {}, []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise ConfigError(f"argument '{word}' is not of the form key=value (see --help)")
        if key in own:
            mine[key] = value
        else:
            rest.append(word)
    return mine, rest


def parse_number(key: str, text: str, kind: type[int] | type[float] = int) -> Any:
    """``text`` as an int (or float), else a ConfigError naming ``key``.

    >>> parse_number("n", "8"), parse_number("t", "0.5", float)
    (8, 0.5)
    """
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{key}={text!r} must be a{'n' if kind is int else ''} "
                          f"{kind.__name__}") from None


def parse_flag(mine: dict[str, str], key: str) -> bool:
    """A yes/no key: ``true``, ``1`` or ``yes`` (any case) is yes; absent is no.

    >>> parse_flag({"dry_run": "True"}, "dry_run"), parse_flag({}, "dry_run")
    (True, False)
    """
    return mine.get(key, "false").lower() in ("true", "1", "yes")


def need_ckpt(mine: dict[str, str]) -> str:
    """The ``ckpt=`` path, which must name an existing file."""
    ckpt = mine.get("ckpt")
    if not ckpt:
        raise ConfigError("missing ckpt=<path to a .ckpt file>")
    if not Path(ckpt).is_file():
        raise ConfigError(f"checkpoint '{ckpt}' does not exist; pass ckpt=<path to a .ckpt file>")
    return ckpt
