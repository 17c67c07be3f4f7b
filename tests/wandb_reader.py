"""Read an offline W&B run back from disk, for tests.

Offline runs write ``wandb/offline-run-<time>-<id>/run-<id>.wandb`` and the media under ``files/``,
but no ``wandb-summary.json``. The ``.wandb`` file is a LevelDB-style log: a 7-byte header
(``:W&B``, magic 0xBEE1, version), then 32 KiB blocks of chunks, each with a 7-byte header
(crc32 u32, length u16, type u8: FULL=1, FIRST=2, MIDDLE=3, LAST=4) holding a serialised
``wandb_internal_pb2.Record``. The summary is the result of applying the run's summary and history
records in log order (latest value wins), which is what :func:`read_summary` does;
:func:`read_summary_leet` asks ``wandb leet inspect --summary --json`` for the same thing.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WANDB_ENV_DIRS = ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR",
                  "WANDB_ARTIFACT_DIR")
BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def isolate_wandb(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Offline, silent W&B whose settings, cache and artifacts live under ``root``."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for name in WANDB_ENV_DIRS:
        path = root / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(name, str(path))


def find_run_dirs(root: Path) -> list[Path]:
    """Every ``offline-run-*`` folder below ``root``, oldest first."""
    return sorted(Path(root).rglob("offline-run-*"), key=lambda p: p.name)


def find_run_dir(root: Path) -> Path:
    """The newest offline run below ``root``, once its log is complete (:func:`wait_closed`);
    fails when there is none."""
    runs = find_run_dirs(root)
    if not runs:
        raise FileNotFoundError(f"no wandb/offline-run-* folder below {root}")
    return wait_closed(runs[-1])


def _chunks(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(kind, payload, last): the log's chunks; ``last`` marks the final one in the file."""
    pos = HEADER
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer too short for a header: zero padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:  # zero-filled rest of a block
            pos += left
            continue
        end = pos + HEADER + length
        yield kind, data[pos + HEADER : end], not data[end:].strip(b"\0")
        pos = end


def read_records(run_dir: Path) -> Iterator[Any]:
    """Every ``Record`` of the run's ``.wandb`` log, in order."""
    from wandb.proto import wandb_internal_pb2

    (log,) = Path(run_dir).glob("*.wandb")
    data = log.read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{log} is not a W&B transaction log")
    from google.protobuf.message import DecodeError

    pending = b""
    for kind, payload, last in _chunks(data):
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(pending)
            except DecodeError:
                if last:  # a record the writer is still appending: the log ends before it
                    return
                raise
            yield record


def _set(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[keys[-1]] = json.loads(item.value_json)


def _remove(target: dict[str, Any], item: Any) -> None:
    keys = list(item.nested_key) or [item.key]
    for key in keys[:-1]:
        target = target.get(key, {})
    target.pop(keys[-1], None)


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's final summary (nested keys as nested dicts), from the ``.wandb`` log."""
    summary: dict[str, Any] = {}
    for record in read_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            for item in record.history.item:
                _set(summary, item)
        elif kind == "summary":
            for item in record.summary.update:
                _set(summary, item)
            for item in record.summary.remove:
                _remove(summary, item)
    return summary


def wait_closed(run_dir: Path, timeout: float = 60.0) -> Path:
    """``run_dir`` once its log ends with the run's ``exit`` record: W&B's service, shared by
    the runs of one process, can still be writing the log when ``wandb.finish`` returns."""
    deadline = time.monotonic() + timeout
    while not any(r.WhichOneof("record_type") == "exit" for r in read_records(run_dir)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run_dir}: no exit record after {timeout:.0f} s")
        time.sleep(0.5)
    return run_dir


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """Every ``wandb.log`` row of the run, in order."""
    rows = []
    for record in read_records(run_dir):
        if record.WhichOneof("record_type") == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                _set(row, item)
            rows.append(row)
    return rows


def wandb_cli() -> Path | None:
    """The ``wandb`` command of this interpreter's environment, if any."""
    local = Path(sys.executable).parent / "wandb"
    found = local if local.exists() else shutil.which("wandb")
    return Path(found) if found else None


def read_summary_leet(run_dir: Path) -> dict[str, Any]:
    """The run's summary as printed by ``wandb leet inspect --summary --json``."""
    cli = wandb_cli()
    if cli is None:
        raise FileNotFoundError("the wandb command is not installed")
    out = subprocess.run([str(cli), "leet", "inspect", "--summary", "--json", str(run_dir)],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)["summary"]


def media_file(run_dir: Path, summary_entry: dict[str, Any], index: int = 0) -> Path:
    """The file behind an image entry of the summary (``{"filenames": [...], ...}``)."""
    return Path(run_dir) / "files" / summary_entry["filenames"][index]


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's config as its ``config`` records set it (later updates win), values decoded."""
    config: dict[str, Any] = {}
    for record in read_records(run_dir):
        kind = record.WhichOneof("record_type")
        items = (record.run.config.update if kind == "run"
                 else record.config.update if kind == "config" else [])
        for item in items:
            key = item.key or "/".join(item.nested_key)
            config[key] = json.loads(item.value_json)
    return config


def read_run(run_dir: Path) -> Any:
    """The run's last ``RunRecord`` (tags, ``run_group``, ``job_type``, ``notes``, ...)."""
    found = [r.run for r in read_records(run_dir) if r.WhichOneof("record_type") == "run"]
    if not found:
        raise ValueError(f"{run_dir}: no run record")
    return found[-1]


def read_metric_definitions(run_dir: Path) -> dict[str, Any]:
    """``define_metric`` records by name (or glob): the MetricRecord messages."""
    found: dict[str, Any] = {}
    for record in read_records(run_dir):
        if record.WhichOneof("record_type") == "metric":
            found[record.metric.name or record.metric.glob_name] = record.metric
    return found


def summary_record(run_dir: Path, key: str) -> Any:
    """The last value the run's own summary records set for ``key`` (where ``define_metric``
    summaries such as ``{"min": ...}`` land), or None."""
    value = None
    for record in read_records(run_dir):
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                if (item.key or "/".join(item.nested_key)) == key:
                    value = json.loads(item.value_json)
    return value


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("_type", "{…}")) + (f" {value['path']}" if "path" in value else "")
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)[:60]


def describe(run_dir: Path) -> str:
    """What a W&B run holds, as markdown: its identity, the planned steps, and one table row per
    history key (rows logged, first and last ``trainer/global_step``, the summary's entry)."""
    run, config, summary = read_run(run_dir), read_config(run_dir), read_summary(run_dir)
    rows = read_history(run_dir)
    steps: dict[str, list[int]] = {}
    for row in rows:
        for key in row:
            if not key.startswith("_"):
                steps.setdefault(key, []).append(int(row.get("trainer/global_step", -1)))
    lines = [f"run `{run.display_name}` ({run.run_id}): group `{run.run_group}`, job type "
             f"`{run.job_type}`, tags {sorted(run.tags)}, notes {run.notes!r}",
             f"config: planned_steps {config.get('planned_steps')}, decay_end_step "
             f"{config.get('decay_end_step')}, params {config.get('params')}; {len(rows)} "
             "history rows", "", "| key | rows | first step | last step | summary |",
             "|---|---|---|---|---|"]
    for key in sorted(steps):
        at = steps[key]
        lines.append(f"| `{key}` | {len(at)} | {at[0]} | {at[-1]} | "
                     f"{_short(summary.get(key, ''))} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m tests.wandb_reader runs/<run>
    for found in find_run_dirs(Path(sys.argv[1])) if len(sys.argv) == 2 else []:
        print(describe(found), end="\n\n")
    if len(sys.argv) != 2:
        print("usage: python -m tests.wandb_reader <run directory or W&B run folder>")
