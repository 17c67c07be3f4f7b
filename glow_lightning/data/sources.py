"""Where images come from: a Hub id, a ``save_to_disk`` folder, parquet file(s) or an image folder.

``load_source`` detects the kind from the path (``source_kind``) and loads it; ``pick_splits``
returns the (train, test) Hugging Face datasets.
A source with only one split gets a deterministic 90/10 train/test split from ``seed``.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any, Literal

import datasets
import torch
from datasets.exceptions import DatasetNotFoundError

from glow_lightning.data.schemas import check_hub_schema, hub_config
from glow_lightning.errors import DataError

SourceKind = Literal["hub", "disk", "parquet", "imagefolder"]
LOCAL_HINT = "a save_to_disk folder, parquet file(s) or an image folder"
TEST_FRACTION = 0.1


def source_kind(source: str) -> SourceKind:
    """Guess the kind of ``source`` from the path; raise DataError for a missing local path.

    >>> source_kind("ylecun/mnist")
    'hub'
    """
    path = Path(source).expanduser()
    if glob.has_magic(source):
        if not glob.glob(os.path.expanduser(source)):
            raise DataError(f"data source '{source}' matches no files; {_fix_path()}")
        return "parquet"
    if path.is_dir():
        return _folder_kind(path)
    if path.is_file():
        if path.suffix == ".parquet":
            return "parquet"
        raise DataError(f"data source '{source}' is a file but not a .parquet file; {_fix_path()}")
    hub_like = source.count("/") <= 1 and ".." not in Path(source).parts  # owner/name
    if (source.endswith(".parquet") or source.startswith(("/", ".", "~")) or "\\" in source
            or not hub_like):
        raise DataError(f"data source '{source}' does not exist; {_fix_path()}")
    return "hub"


def _fix_path() -> str:
    return f"point data.source= at {LOCAL_HINT}"


def _folder_kind(path: Path) -> SourceKind:
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return "disk"
    if next(path.rglob("*.parquet"), None) is not None:
        return "parquet"
    return "imagefolder"


def load_source(source: str, cache_dir: str | None = None, streaming: bool = False
                ) -> dict[str, Any]:
    """All splits of ``source`` by name (one split named "train" when the source has no splits):
    map-style ``Dataset``s, or ``IterableDataset``s read as streams with ``streaming``."""
    kind = source_kind(source)
    if kind == "hub":
        loaded: Any = load_hub(source, cache_dir, streaming)
    else:
        check_shards(source)
        loaded = load_local(kind, source, cache_dir, streaming)
    splits = {"train": loaded} if not isinstance(loaded, dict) else dict(loaded)
    if kind == "hub":
        check_hub_schema(source, splits)
    return splits


SHARD = re.compile(r"^(?P<split>.+?)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")


def check_shards(source: str) -> None:
    """Hub-style shard names (``train-00001-of-00004.parquet``) must be complete."""
    path = Path(os.path.expanduser(source))
    files = ([Path(f) for f in glob.glob(str(path))] if glob.has_magic(source)
             else list(path.rglob("*.parquet")) if path.is_dir() else [path])
    groups: dict[tuple[Path, str, int], set[int]] = {}
    for f in files:
        if m := SHARD.match(f.name):
            key = (f.parent, m["split"], int(m["count"]))
            groups.setdefault(key, set()).add(int(m["index"]))
    for (folder, split, count), seen in sorted(groups.items()):
        missing = sorted(set(range(count)) - seen)
        if missing and not glob.has_magic(source):
            name = f"{split}-{missing[0]:05d}-of-{count:05d}.parquet"
            raise DataError(f"data source '{source}' lacks {len(missing)} of the {count} "
                            f"'{split}' shards (first missing: {folder / name}); copy the "
                            "missing files or point data.source= at complete data")


def load_local(kind: SourceKind, source: str, cache_dir: str | None = None,
               streaming: bool = False) -> Any:
    """Load a local source; failures of the ``datasets`` loaders become one-line DataErrors."""
    path = os.path.expanduser(source)
    if kind == "disk" and streaming:
        raise DataError(f"data.streaming=true cannot stream the save_to_disk folder '{source}'; "
                        "set data.streaming=false (it is read from disk lazily anyway), or "
                        "point data.source= at parquet files or an image folder")
    try:
        if kind == "disk":
            return datasets.load_from_disk(path)
        if kind == "parquet" and not os.path.isdir(path):
            return datasets.load_dataset("parquet", data_files=path, cache_dir=cache_dir,
                                         streaming=streaming)
        return datasets.load_dataset(kind, data_dir=path, cache_dir=cache_dir,
                                     streaming=streaming)
    except Exception as exc:
        reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        if "corresponds to no data" in reason or isinstance(exc, IndexError):
            reason = f"a split is empty ({reason})"
        raise DataError(
            f"could not load {kind} data source '{source}': {reason}; "
            f"check that it is {LOCAL_HINT} with images in every split"
        ) from exc


def load_hub(source: str, cache_dir: str | None = None, streaming: bool = False) -> Any:
    """``datasets.load_dataset(source)`` (with its recorded config name, if any), with offline
    and not-found failures as DataError; an unreachable Hub is found out at once
    (:func:`check_hub_reachable`), not after ``datasets``' half a minute of retries."""
    check_hub_reachable(source)
    try:
        return datasets.load_dataset(source, hub_config(source), cache_dir=cache_dir,
                                     streaming=streaming)
    except ConnectionError as exc:
        raise _unreachable(source) from exc
    except DatasetNotFoundError as exc:
        raise DataError(
            f"dataset '{source}' was not found on the Hugging Face Hub and no local path of that "
            f"name exists; check data.source= (a Hub id or {LOCAL_HINT})"
        ) from exc


def _unreachable(source: str) -> DataError:
    return DataError(
        f"could not reach the Hugging Face Hub for dataset '{source}' (offline or no network) "
        f"and no local path of that name exists; download it where the Hub is reachable, point "
        f"data.source=/path/to/folder at {LOCAL_HINT}, or set HF_HUB_OFFLINE=1 to read a copy "
        "already in the cache")


def check_hub_reachable(source: str) -> None:
    """One quick request to the Hub for ``source``: a DataError at once when the Hub cannot be
    reached. Skipped in offline mode (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``: ``datasets``
    then reads its cache and fails at once itself); any other answer (found, not found, gated)
    is left to ``datasets``."""
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE"):
        return
    import huggingface_hub

    try:
        huggingface_hub.HfApi().dataset_info(source, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise _unreachable(source) from exc
    except Exception as exc:  # the HTTP client's connect and timeout errors are its own types
        if "connect" in type(exc).__name__.lower() or "timeout" in type(exc).__name__.lower():
            raise _unreachable(source) from exc


def pick_splits(
    splits: dict[str, datasets.Dataset], test_names: tuple[str, ...], seed: int, source: str
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, test): the named splits, or a seeded 90/10 split of a single-split source."""
    test_name = next((name for name in test_names if name in splits), None)
    if "train" in splits and test_name is not None:
        return splits["train"], splits[test_name]
    if len(splits) == 1:
        only = next(iter(splits.values()))
        if not isinstance(only, datasets.Dataset):
            raise DataError(f"data source '{source}' has the one split {sorted(splits)}; a "
                            f"streamed source needs 'train' and one of {list(test_names)}; "
                            "split it into files named train-*/test-* or set "
                            "data.streaming=false")
        return split_off_test(only, seed)
    raise DataError(
        f"data source '{source}' has splits {sorted(splits)}; expected 'train' and one of "
        f"{list(test_names)}, or a single split; rename the splits or save one split"
    )


def split_off_test(table: datasets.Dataset, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Deterministic 90/10 (train, test) split of one dataset, from ``seed``."""
    n_test = max(1, int(len(table) * TEST_FRACTION)) if len(table) > 1 else 0
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed))
    test_rows, train_rows = order[:n_test].sort().values, order[n_test:].sort().values
    return table.select(train_rows.tolist()), table.select(test_rows.tolist())


def cap_rows(table: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first ``limit`` rows of ``table`` (all of them when ``limit`` is None)."""
    return table if limit is None or limit >= len(table) else table.select(range(limit))
