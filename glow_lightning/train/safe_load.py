"""Weights-only checkpoint loading: a checkpoint never runs code when it is read.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers (dict, list, tuple,
str, numbers, None). Everything this project saves stays inside that set, so every load here is
weights-only; a file that carries other pickled objects is refused with one line naming it.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from glow_lightning.errors import CheckpointRefused


def _refused(path: str | Path, unsafe: list[str]) -> CheckpointRefused:
    names = ", ".join(sorted(set(unsafe))[:3])
    return CheckpointRefused(
        f"refused to load checkpoint '{path}': it carries pickled objects ({names}) that could run "
        "code when unpickled; only weights-only checkpoints (tensors and plain values) load")


def unsafe_globals(path: str | Path) -> list[str] | None:
    """Classes and functions the pickle in ``path`` names beyond the weights-only allowlist,
    found by disassembling it (nothing is executed); None for the legacy (pre-zip) format, which
    cannot be disassembled. Raises CheckpointRefused when the file is missing or unreadable."""
    _require_file(path)
    if not zipfile.is_zipfile(str(path)):
        return None
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (RuntimeError, ValueError, OSError, EOFError, zipfile.BadZipFile,
            pickle.UnpicklingError) as err:
        raise _unreadable(path, err) from None


def check_checkpoint(path: str | Path) -> None:
    """Refuse ``path`` (CheckpointRefused, one line) unless it loads weights-only. Zip
    checkpoints are inspected without loading their tensors; legacy ones are loaded."""
    unsafe = unsafe_globals(path)
    if unsafe is None:
        _weights_only_load(path, "cpu")
    elif unsafe:
        raise _refused(path, unsafe)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` after the inspection of :func:`unsafe_globals`;
    every failure becomes a one-line CheckpointRefused."""
    unsafe = unsafe_globals(path)
    if unsafe:
        raise _refused(path, unsafe)
    return _weights_only_load(path, map_location)


def _weights_only_load(path: str | Path, map_location: Any) -> dict[str, Any]:
    try:
        loaded = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as err:  # a damaged file fails anywhere inside the unpickler
        names = re.findall(r"GLOBAL (\S+)", str(err))
        names = names or pickled_globals(path)  # a plain pickle naming code is unsafe, not damaged
        if isinstance(err, pickle.UnpicklingError) and names:  # the allowlist refused an object
            raise _refused(path, names) from None
        raise _unreadable(path, err) from None
    if not isinstance(loaded, dict):
        raise CheckpointRefused(f"checkpoint '{path}' holds a {type(loaded).__name__}, "
                                "not a checkpoint dictionary")
    return loaded


def pickled_globals(path: str | Path) -> list[str]:
    """The ``module.name`` globals a plain (non-zip) pickle file names, read by disassembling it
    (nothing runs); [] when it is no pickle or names none."""
    found: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as handle:
            for op, arg, _ in pickletools.genops(handle):
                if op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # damaged or not a pickle at all: the caller reports it as unreadable
        return found
    return found


def _require_file(path: str | Path) -> None:
    if not Path(path).is_file():
        raise CheckpointRefused(f"checkpoint '{path}' does not exist; "
                                "pass the path of a .ckpt file")


def _unreadable(path: str | Path, err: BaseException) -> CheckpointRefused:
    return CheckpointRefused(f"could not read checkpoint '{path}' (truncated or not a torch "
                             f"checkpoint): {_first_line(err)}")


def _first_line(err: BaseException) -> str:
    line = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {line.split('. ')[0].rstrip('.')}"
