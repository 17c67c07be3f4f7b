"""The processes of one launch: who is rank zero, what they agree on, who prepares the data.

Under ``torchrun`` or SLURM every process runs the whole entry point from the start, so values
derived from the clock (the run name) could differ between ranks, and every process would
download or convert the data at once. When such a launcher started the processes, the process
group is initialised here, before the Trainer exists, with Lightning's own cluster environment
and the backend its DDP strategy would pick; Lightning then finds it initialised and uses it.
Rank zero decides, the others receive (:func:`shared`), and one process per node prepares data
while the others wait (:func:`node_leader_first`). Under Lightning's own launcher
(``trainer.strategy=ddp`` without torchrun) the other ranks start later, from rank zero's
environment, and nothing here is needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def _cluster() -> Any | None:
    """Lightning's environment of an external launcher that started several processes."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for env_cls in (TorchElasticEnvironment, SLURMEnvironment):
        if env_cls.detect():
            env = env_cls()
            return env if env.world_size() > 1 else None
    return None


def init_process_group(accelerator: str = "auto", timeout_minutes: float = 30.0) -> bool:
    """Initialise the default process group now if a launcher started several processes;
    returns whether one is initialised. Backend: NCCL on GPUs, gloo otherwise (as Lightning's
    DDP strategy chooses)."""
    if dist.is_initialized():
        return True
    env = _cluster()
    if env is None:
        return False
    from lightning.fabric.utilities.distributed import _init_dist_connection

    gpu = torch.cuda.is_available() and accelerator in ("auto", "gpu", "cuda")
    if gpu:
        torch.cuda.set_device(env.local_rank())
    _init_dist_connection(env, "nccl" if gpu else "gloo",
                          timeout=timedelta(minutes=timeout_minutes))
    return True


def is_rank_zero() -> bool:
    """Whether this process is global rank zero: of the process group once there is one, else
    of what torchrun, SLURM or Lightning's own launcher put in the environment."""
    if dist.is_initialized():
        return dist.get_rank() == 0
    for key in ("RANK", "SLURM_PROCID"):
        if key in os.environ:
            return int(os.environ[key]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def local_rank() -> int:
    """This process's rank on its node (0 without a launcher)."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))


def shared(value: T) -> T:
    """Rank zero's ``value`` on every rank (``value`` itself without a process group)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def node_leader_first(fn: Callable[[], T]) -> T:
    """``fn()`` on local rank zero first, then, once it has finished, on the node's other ranks
    (which then find its work cached). Without a process group: just ``fn()``."""
    if not dist.is_initialized():
        return fn()
    result = fn() if local_rank() == 0 else None
    dist.barrier()
    return result if local_rank() == 0 else fn()  # type: ignore[return-value]


def end_launch() -> None:
    """Wait for every rank, then close the process group: a rank that left first would tear
    down its communication threads while rank zero still writes its W&B run (seen as
    ``terminate called without an active exception`` and the launcher stopping rank zero)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def busy_cores_notice(threads: int, processes: int, cores: int, load: float) -> str | None:
    """One line when the host's load leaves fewer cores than this launch's threads (``threads``
    per process, ``processes`` on this node) need, else None. Each of a step's thousands of small
    ops ends in a barrier of its threads; a thread that waits for a busy core stalls the others
    (RealNVP at a tiny setting, 2 threads under a load of 3.5 on 2 cores: 0.4-1.2 s a step
    against 0.2-0.3 s with 1 thread, benchmarks/RESULTS.md).

    >>> busy_cores_notice(2, 1, 2, load=3.5) is not None, busy_cores_notice(2, 1, 2, load=0.3)
    (True, None)
    """
    wanted = threads * processes
    if wanted < 2 or load <= cores - wanted + 1:
        return None
    free = max(1, int(cores - load + 1))
    fix = (f"trainer.num_threads={max(1, min(free // processes, threads - 1))}" if threads > 1
           else f"trainer.devices={max(1, min(free, processes - 1))}")
    return (f"note: load average {load:.1f} on {cores} cores: {wanted} threads "
            f"({threads} a process) will wait on busy cores and steps can run several times "
            f"slower; {fix} avoids that")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
