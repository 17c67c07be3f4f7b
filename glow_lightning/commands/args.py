"""The ``key=value`` words of every command: split into the command's own keys and config
overrides, numbers parsed with one-line errors naming the key."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from glow_lightning.errors import ConfigError


def split_keys(words: Sequence[str], own: Collection[str], strict: bool = False
               ) -> tuple[dict[str, str], list[str]]:
    """``key=value`` words → (the command's own keys, the config overrides). ``strict``: a
    word without a dot must be one of ``own`` (a misspelt key is refused with the nearest one,
    never passed on or dropped); words with a dot are config overrides.

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
        elif strict and "." not in key:
            raise unknown_key(key, own)
        else:
            rest.append(word)
    return mine, rest


def unknown_key(key: str, own: Collection[str]) -> ConfigError:
    """One line naming ``key``, the nearest known key and every known key.

    >>> print(unknown_key("tempreature", ["n", "temperature"]))  # doctest: +ELLIPSIS
    unknown argument 'tempreature'; did you mean 'temperature'? (known: n, temperature; ...)
    """
    close = difflib.get_close_matches(key, list(own), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ";"
    return ConfigError(f"unknown argument '{key}'{hint} (known: {', '.join(sorted(own))}; "
                       "config overrides have a dot, e.g. data.source=...)")


def parse_bounded(key: str, text: str, low: float, high: float = float("inf"),
                  kind: type[int] | type[float] = int) -> Any:
    """:func:`parse_number` that must lie in ``[low, high]``, else one line with the range.

    >>> parse_bounded("n", "4", 1)
    4
    """
    value = parse_number(key, text, kind)
    if not low <= value <= high:
        upper = "" if high == float("inf") else f" and <= {high:g}"
        raise ConfigError(f"{key}={text} must be >= {low:g}{upper}")
    return value


def need_png(out: str) -> str:
    """``out=``: a file path ending in .png whose folder exists (not a directory)."""
    path = Path(out)
    if path.is_dir() or path.suffix.lower() != ".png":
        raise ConfigError(f"out={out!r} must be a file path ending in .png, e.g. out=grid.png")
    if not path.parent.is_dir():
        raise ConfigError(f"out={out!r}: folder '{path.parent}' does not exist; create it or "
                          "choose another out=")
    return out


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
    if Path(ckpt).is_dir():
        raise ConfigError(f"ckpt='{ckpt}' is a directory; pass the path of a .ckpt file in it, "
                          "e.g. ckpt=runs/<run>/checkpoints/last.ckpt")
    if not Path(ckpt).is_file():
        raise ConfigError(f"checkpoint '{ckpt}' does not exist; pass ckpt=<path to a .ckpt file>")
    return ckpt
