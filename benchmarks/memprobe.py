"""Peak training memory of one implementation, measured in a fresh process (Linux).

    python -m benchmarks.memprobe '{"impl": "ours", "levels": 3, "steps": 32, "hidden": 512,
                                    "batch": 16, "shape": [3, 32, 32], "timed_steps": 2}'

Method (printed as one JSON line):

1. ``rss_imports``: resident set size (``VmRSS``) after importing torch and the library.
2. Build the model and ``torch.optim.Adam`` (fused); run one warm-up step (ActNorm init, Adam
   state), drop the gradients (``zero_grad(set_to_none=True)``), ``gc.collect()`` and glibc
   ``malloc_trim(0)`` so freed activations are returned to the OS. ``rss_state`` = ``VmRSS`` now:
   parameters + optimiser state (+ libraries).
3. Reset the kernel's peak counter (``echo 5 > /proc/self/clear_refs`` resets ``VmHWM``), run
   ``timed_steps`` steps, read ``VmHWM`` = ``rss_peak``.

``activation`` = rss_peak − rss_state (activations, gradients and temporaries of a step);
``training peak`` = rss_peak − rss_imports (everything training adds on top of the libraries).
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import sys
import time
from pathlib import Path


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def probe(spec: dict) -> dict:
    import torch

    from benchmarks.common import adam, synthetic_batches
    from benchmarks.peers import build

    torch.set_num_threads(int(spec.get("threads", 2)))
    build("ours", (1, 8, 8), levels=1, steps=1, hidden=2)  # imports ours and torch pieces
    if spec["impl"] in ("normflows", "freia"):
        build(spec["impl"], (4, 8, 8), levels=2, steps=1, hidden=2)
    shape = tuple(spec.get("shape", (3, 32, 32)))
    x = synthetic_batches(shape, spec["batch"], 1, seed=0)[0]
    trim()
    rss_imports = status_kib("VmRSS")
    torch.manual_seed(0)
    impl = build(spec["impl"], shape, spec["levels"], spec["steps"], spec["hidden"])
    opt = adam(impl.model.parameters())

    def step() -> None:
        loss = impl.nll(x).mean() / (x[0].numel() * math.log(2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    opt.zero_grad(set_to_none=True)
    trim()
    rss_state = status_kib("VmRSS")
    reset_peak()
    times = []
    for _ in range(int(spec.get("timed_steps", 2))):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    rss_peak = status_kib("VmHWM")
    mib = 1 / 1024
    return dict(spec, params=impl.params, rss_imports_mib=rss_imports * mib,
                rss_state_mib=rss_state * mib, rss_peak_mib=rss_peak * mib,
                activation_mib=(rss_peak - rss_state) * mib,
                training_peak_mib=(rss_peak - rss_imports) * mib,
                step_s=sorted(times)[len(times) // 2])


def measure(spec: dict, timeout: float = 900) -> dict:
    """Run :func:`probe` in a fresh interpreter (so peaks do not mix) and return its result."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "benchmarks.memprobe", json.dumps(spec)],
                         cwd=root, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"memprobe failed for {spec}:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))
