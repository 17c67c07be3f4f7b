"""What a data module read, for results that can be cited: its data version, whether the papers'
numbers were measured on that version, and its identity (the source and the splits in use).

``Provenance`` is a mixin of :class:`~glow_lightning.data.base.ImageDataModule`; the helpers it
uses (file-list hashes, Hub revisions) are in :mod:`glow_lightning.data.identity`, the versions
in :mod:`glow_lightning.data.versions`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from glow_lightning.data.identity import hub_revision, local_identity, tensors_sha256
from glow_lightning.data.schemas import hub_config
from glow_lightning.data.sources import source_kind
from glow_lightning.data.versions import DataVersion, comparability_note


class Provenance:
    """Versions, paper comparability and ``identity()`` of an ImageDataModule."""

    versions: ClassVar[tuple[DataVersion, ...]] = (
        DataVersion("hub", "the default Hub copy, or the copy at data.source"),)
    name: str
    data_version: DataVersion  # set by the data module from data.version
    _cache_files: list[dict[str, Any]]
    _identity: dict[str, Any] | None

    def _source(self) -> str:  # the data module's
        raise NotImplementedError

    def default_version(self) -> DataVersion:
        """The version read when ``data.version`` is null: the first listed."""
        return self.versions[0]

    def comparability_note(self, paper_bpd: float | None = None) -> str | None:
        """One line on why this run's test bits/dim are not comparable to the paper's number
        (``paper_bpd``, if given), or None when the data is the papers' (or has no number)."""
        return comparability_note(self.name, self.data_version, paper_bpd)

    def paper_comparable(self) -> bool:
        """Whether the papers' bits/dim were measured on this run's data version."""
        return self.comparability_note() is None

    def identity(self) -> dict[str, Any]:
        """What this run read, as plain JSON values (sets the data up; computed once):
        {"dataset", "version", "source": {"kind": hub | disk | parquet | imagefolder | oord |
        embedded, then "hub_id", "hub_config", "revision", "revision_note" for a Hub id, or
        "path", "file_count", "files_sha256" for local files, or "variant", "arrays_sha256"},
        "splits": {"train", "val", "test", "val_is_test", "val_seed", "val_rows_sha256"},
        "test_split" (the source's split read as the test split),
        "paper_comparable", "comparability_note"}. ``splits.val`` counts the images the
        validation loader serves (the test split's when ``val_is_test``)."""
        if self._identity is None:
            dm: Any = self
            splits = split_identity(dm)  # sets the data up: the revision is known after it
            self._identity = {"dataset": dm.name, "version": self.data_version.name,
                              "source": self.source_identity(), "splits": splits,
                              "test_split": dm.test_split,
                              "paper_comparable": self.paper_comparable(),
                              "comparability_note": self.comparability_note()}
        return self._identity

    def source_identity(self) -> dict[str, Any]:
        """{"kind", ...}: a Hub id and its revision, or a local path, file count and hash."""
        source = self._source()
        kind = source_kind(source)
        if kind != "hub":
            return {"kind": kind, **local_identity(source)}
        revision, how = hub_revision(source, self._cache_files)
        return {"kind": "hub", "hub_id": source, "hub_config": hub_config(source),
                "revision": revision, "revision_note": how}


def split_identity(dm: Any) -> dict[str, Any]:
    """The split sizes a data module uses, and how validation was chosen."""
    if dm.streaming:
        return {"train": dm.streams.train_size, "val": None, "test": None,
                "val_is_test": True, "val_seed": None, "val_rows_sha256": None,
                "note": "streamed: validation streams the test split; its size is not counted"}
    splits = dm.splits
    held_out = splits.val is not None
    return {"train": len(splits.train), "val": len(splits.val) if held_out else len(splits.test),
            "test": len(splits.test), "val_is_test": not held_out,
            "val_seed": dm.seed if held_out else None,
            "val_rows_sha256": tensors_sha256(splits.val_rows) if held_out else None}
