"""Which copy of a dataset a run reads (``data.version``), and whether the papers' numbers were
measured on it.

A benchmark can exist in several copies that differ in more than format. Downsampled ImageNet is
the clearest case: the Glow (Kingma & Dhariwal 2018, Table 2) and Real NVP (Dinh et al. 2017,
Table 1) numbers are on van den Oord et al.'s (2016) downsampled ImageNet (``oord``), whereas the
ImageNet copies on the Hugging Face Hub are ILSVRC images centre-cropped and Lanczos-resized
(``hub``): a different image distribution, so their bits/dim cannot be compared with the papers'.
Each data module lists its versions (the first is the default); a version whose ``note`` is set
was not the papers' data, and the note says why in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from glow_lightning.errors import DataError


@dataclass(frozen=True)
class DataVersion:
    """One copy of a dataset: its ``name`` (a ``data.version`` value), what it is, whether it
    must be read from ``data.source`` (``local``), and the reason (``note``) it is not the data
    the papers' bits/dim were measured on (None: it is, or the papers report no number)."""

    name: str
    description: str
    local: bool = False
    note: str | None = None
    aliases: tuple[str, ...] = ()
    how_to_get: str = ""  # where to download a local-only version, for its error message


def find_version(dataset: str, versions: tuple[DataVersion, ...], requested: str
                 ) -> DataVersion:
    """The version named ``requested`` (or one of its aliases); one-line DataError if unknown."""
    for version in versions:
        if requested == version.name or requested in version.aliases:
            return version
    names = ", ".join(v.name for v in versions)
    raise DataError(f"{dataset} has no data.version={requested!r}; choose one of: {names} "
                    "(or null: the dataset's default)")


def require_source(dataset: str, version: DataVersion, source: str | None,
                   has_hub_copy: bool = True) -> None:
    """A local-only version needs ``data.source``; say where to get the data when it is unset."""
    if version.local and source is None:
        where = f" ({version.how_to_get})" if version.how_to_get else ""
        what = (f"data.version={version.name} is read from local files" if has_hub_copy
                else "has no Hugging Face Hub copy")
        raise DataError(f"{dataset} {what}: point data.source= at local files{where}")


def comparability_note(dataset: str, version: DataVersion, paper_bpd: float | None = None
                       ) -> str | None:
    """One line on why test bits/dim of ``version`` are not the papers' (None: they are)."""
    if version.note is None:
        return None
    target = f"paper_bpd {paper_bpd:g}" if paper_bpd is not None else "the papers' bits/dim"
    return (f"{dataset} data.version={version.name} is {version.note}: test bits/dim are not "
            f"comparable to {target}")
