"""What exactly a run read: the source's identity as plain JSON values, cheap to compute.

Local data is identified by its file list (sorted relative paths and byte sizes, hashed with
sha256: file contents are not read, so a 1.3M-file folder costs one directory walk); Hub data by
its id and the commit (revision) the ``datasets`` cache or the Hub reports; tensors (the embedded
digits) by a sha256 of their bytes.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

SHA = re.compile(r"^[0-9a-f]{40}$")


def files_sha256(root: Path, files: Iterable[Path]) -> str:
    """sha256 of "relative path<TAB>size" lines of ``files`` under ``root``, sorted by path."""
    lines = sorted(f"{f.relative_to(root).as_posix()}\t{f.stat().st_size}\n" for f in files)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
    return digest.hexdigest()


def local_files(source: str) -> tuple[Path, list[Path]]:
    """(root, files) of a local source: a glob's matches, one file, or a folder's files."""
    path = Path(os.path.expanduser(source))
    if glob.has_magic(source):
        files = [Path(f) for f in glob.glob(str(path)) if os.path.isfile(f)]
        root = Path(os.path.commonpath([str(f.parent) for f in files])) if files else path.parent
        return root, files
    if path.is_file():
        return path.parent, [path]
    return path, [f for f in path.rglob("*") if f.is_file()]


def local_identity(source: str, files: tuple[Path, list[Path]] | None = None) -> dict[str, Any]:
    """{"path", "file_count", "files_sha256"} of a local source (``files``: already listed)."""
    root, listed = files or local_files(source)
    return {"path": str(Path(os.path.expanduser(source)).resolve()), "file_count": len(listed),
            "files_sha256": files_sha256(root, listed)}


def tensors_sha256(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.contiguous().cpu()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def cached_revision(cache_files: Iterable[dict[str, Any]]) -> str | None:
    """The Hub commit in a ``datasets`` cache path (``.../<config>/0.0.0/<sha>/x.arrow``)."""
    for entry in cache_files:
        for part in Path(entry.get("filename", "")).parts:
            if SHA.match(part):
                return part
    return None


def hub_revision(repo: str, cache_files: Iterable[dict[str, Any]]) -> tuple[str | None, str]:
    """(commit sha or None, how it was found or why it is missing); never blocks for long."""
    cached = cached_revision(cache_files)
    if cached is not None:
        return cached, "the commit of the datasets cache that was read"
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return None, "unknown: HF_HUB_OFFLINE is set, the Hub was not asked"
    try:
        from huggingface_hub import HfApi

        sha = HfApi().dataset_info(repo, timeout=10).sha
    except Exception as exc:  # offline, rate-limited, private: record why, never fail the run
        reason = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        return None, f"unknown: the Hub did not answer ({reason[:120]})"
    return sha, "the Hub's current commit when the run started (the cache path named none)"

