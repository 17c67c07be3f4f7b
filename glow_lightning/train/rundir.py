"""Run directories that one run owns: a new run never writes into another run's folder.

* ``run_name`` is one path component under ``out_dir`` (checked with the config, after YAML
  interpolations resolved it: :func:`glow_lightning.config.validate`).
* :func:`claim_run_dir`: a new run creates its folder atomically (``mkdir`` without
  ``exist_ok``) and is refused when it exists; only a resume (``resume=auto|PATH``) writes into
  an existing one.
* :func:`lock_run_dir`: ``<run_dir>/.lock`` (created with ``O_EXCL``, holding host, pid and
  SLURM job id) refuses a second concurrent writer; it is released when the run ends, also on
  an error (``atexit`` as the last resort). Its holder touches it every ``HEARTBEAT_S`` seconds.
  A lock is stale, and taken over, when its process is gone (same host), when it was left by an
  earlier run of this same SLURM job (a requeued job starts after its previous run was ended,
  possibly on another node), or when its heartbeat is older than ``STALE_S`` (another host,
  whose processes cannot be asked).
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from pathlib import Path

from glow_lightning.errors import ConfigError, GlowLightningError, StorageError
from glow_lightning.train.launch import is_rank_zero, shared

LOCK = ".lock"
HEARTBEAT_S = 30.0  # how often a holder touches its lock
STALE_S = 600.0  # a lock from another host untouched this long has no living holder


def free_name(out_dir: str | Path, base: str) -> str:
    """``base``, or ``base-1``, ``base-2``, … when a folder of that name exists in ``out_dir``
    (two runs started in the same second never share a folder)."""
    names = (f"{base}-{i}" if i else base for i in range(10_000))
    return next(n for n in names if not (Path(out_dir) / n).exists())


def storage_error(path: str | Path, err: BaseException) -> StorageError:
    """One line naming ``path`` and what the file system said (permissions, disk full)."""
    if isinstance(err, OSError) and err.errno:
        reason = os.strerror(err.errno)
    else:  # torch.save reports a failed write (a full disk) as a RuntimeError
        reason = "the write failed (is the disk full?)"
    return StorageError(f"cannot write '{path}': {reason}; free space or choose a writable "
                        "out_dir=<folder>")


def claim_run_dir(run_dir: Path, resuming: bool) -> None:
    """Create ``run_dir`` for a new run, refusing one that exists unless ``resuming``."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(exist_ok=resuming)
    except FileExistsError:
        raise ConfigError(f"run directory '{run_dir}' already exists (an earlier run); "
                          "continue it with resume=auto, or choose another run_name=") from None
    except OSError as err:
        raise storage_error(run_dir, err) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_HELD: dict[Path, int] = {}  # lock file -> the pid that took it
_BEATS: dict[Path, threading.Event] = {}  # lock file -> set to stop its heartbeat


def _job() -> str:
    return os.environ.get("SLURM_JOB_ID") or "-"


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            os.utime(path)
        except OSError:  # released or removed: nothing left to keep alive
            return


def lock_run_dir(run_dir: Path) -> None:
    """Take ``<run_dir>/.lock`` for this process. A lock left by a process that is gone (on this
    host) is stale and replaced; one this process already holds is kept; a live holder is
    refused with one ConfigError line."""
    path = run_dir / LOCK
    if _HELD.get(path) == os.getpid():
        return
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _refuse_or_clear(path)
            continue
        except OSError as err:
            raise storage_error(path, err) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{socket.gethostname()} {os.getpid()} {_job()}\n")
        _HELD[path] = os.getpid()
        _BEATS[path] = stop = threading.Event()
        threading.Thread(target=_heartbeat, args=(path, stop), daemon=True).start()
        atexit.register(release_run_dir, run_dir)
        return
    raise ConfigError(f"could not take the lock '{path}'; retry")


def _stale(path: Path) -> tuple[bool, str]:
    """Whether the lock at ``path`` has no living holder, and who holds it, in words."""
    try:
        host, pid, *rest = path.read_text().split()
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):  # half-written or vanished: its writer died or just left
        return True, ""
    job = rest[0] if rest else "-"
    if host == socket.gethostname() and (not pid.isdigit() or not _alive(int(pid))):
        return True, ""
    if job != "-" and job == _job() and (host, pid) != (socket.gethostname(), str(os.getpid())):
        return True, ""  # an earlier run of this requeued SLURM job
    if host != socket.gethostname() and age > STALE_S:
        return True, ""
    return False, f"process {pid} on {host} (lock touched {age:.0f} s ago)"


def _refuse_or_clear(path: Path) -> None:
    stale, holder = _stale(path)
    if stale:
        path.unlink(missing_ok=True)
        return
    raise ConfigError(f"run directory '{path.parent}' is in use by {holder}, {path}; wait for it "
                      f"to end, or choose another run_name= (a lock from another host is taken "
                      f"over once untouched for {STALE_S:.0f} s)")


def release_run_dir(run_dir: Path) -> None:
    """Remove the lock, only in the process that took it (a forked DDP child inherits the
    ``atexit`` hook but must not release its parent's lock)."""
    path = run_dir / LOCK
    if _HELD.get(path) == os.getpid():
        del _HELD[path]
        _BEATS.pop(path, threading.Event()).set()
        path.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write ``path`` whole (a temporary file renamed over it) or not at all; StorageError."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, err) from None


def own_run_dir(run_dir: Path, resuming: bool, config_yaml: str) -> None:
    """Rank zero claims ``run_dir`` (:func:`claim_run_dir`), locks it and writes its
    ``config.yaml``; under a process group every rank learns of a refusal and raises it too,
    instead of waiting for rank zero at the next collective. Other ranks write nothing here."""
    error: GlowLightningError | None = None
    if is_rank_zero():
        try:
            claim_run_dir(run_dir, resuming)
            lock_run_dir(run_dir)
            write_text(run_dir / "config.yaml", config_yaml)
        except GlowLightningError as err:
            error = err
    message = shared(str(error) if error else None)
    if error:
        raise error
    if message:
        raise ConfigError(message)
