"""Shared benchmark plumbing: threads, interleaved timing, machine line, tables, RESULTS.md.

Timing is interleaved (A B C A B C …) and summarised by medians, so a load change on the machine
hits every implementation alike; only ratios from the same run are compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from glow_lightning.flows.nets import cpu_bfloat16_kernels as bf16_kernels

RESULTS = Path(__file__).with_name("RESULTS.md")
SHAPE_S = (3, 32, 32)
CONFIG_S = dict(levels=3, steps=8, hidden=128)
CONFIG_P = dict(levels=3, steps=32, hidden=512)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--quick", action="store_true", help="fast smoke run; RESULTS.md untouched")
    p.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baseline", default=None, metavar="REV",
                   help="add our flows as of git revision REV (e.g. HEAD~1) to the comparison, "
                        "with the paired speed-up of the current code over it")
    return p


def baseline_line(times: dict[str, list[float]], ours: str, rev: str | None) -> str:
    """One sentence: the paired speed-up of ``ours`` over the ``ours@rev`` row, or nothing."""
    base = next((name for name in times if name.endswith(f"@{rev}")), None) if rev else None
    if base is None:
        return ""
    return (f"Current code against `{rev}` (same run, paired by round): "
            f"{paired_speedup(times[ours], times[base])} as fast.")


def adam(params, lr: float = 1e-4) -> torch.optim.Optimizer:
    """The optimiser of the speed and memory benchmarks, the same for every implementation:
    ``torch.optim.Adam`` with the fused CPU kernel (one op for all parameters, so the number of
    parameter tensors an implementation happens to have does not show up as optimiser time)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)


def interleaved(fns: dict[str, Callable[[], object]], rounds: int,
                warmup: int = 1) -> dict[str, list[float]]:
    """Run every function ``warmup`` times, then ``rounds`` × (A, B, C, …); wall seconds each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def paired_speedup(times: Sequence[float], reference: Sequence[float]) -> str:
    """Speed-up of ``times`` over ``reference`` round by round (``reference[i] / times[i]``, the
    two measured back to back in round ``i``), as "median× (quartiles)". Pairing cancels the
    host's slow drifts, which on a shared VM move absolute times by ±30% within minutes; the
    quartiles show how much of that remains."""
    ratios = sorted(r / t for t, r in zip(times, reference, strict=True))
    if len(ratios) < 4:
        return f"{statistics.median(ratios):.2f}×"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"{statistics.median(ratios):.2f}× ({q1:.2f}–{q3:.2f})"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line(threads: int) -> str:
    isa = torch.backends.cpu.get_cpu_capability()
    bf16 = "with" if bf16_kernels() else "no"
    return (f"{cpu_model()}, {os.cpu_count()} cores, {isa}, {bf16} oneDNN bfloat16 kernels; "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"torch threads {threads}")


def versions() -> str:
    out = []
    for name in ("normflows", "FrEIA"):
        try:
            from importlib.metadata import version

            out.append(f"{name} {version(name)}")
        except Exception:  # a peer that is not installed is reported, not fatal
            out.append(f"{name} not installed")
    return ", ".join(out)


def command_line() -> str:
    return "python -m " + " ".join(["benchmarks." + Path(sys.argv[0]).stem, *sys.argv[1:]])


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def header(threads: int, load_before: str) -> str:
    return (f"Machine: {machine_line(threads)}; {versions()}.  \n"
            f"Command: `{command_line()}`  \n"
            f"Load average (1/5/15 min) before → after: {load_before} → {load_average()} "
            "(other jobs shared the 2 cores at times; timings are interleaved, ratios same-run).")


def write_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the ``## title`` section of ``path``, leaving other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


def report(title: str, body: str, args: argparse.Namespace) -> None:
    """Print the section and, unless ``--quick``/``--no-write``, store it in RESULTS.md under a
    heading that names the thread count (runs at 1 and 2 threads keep separate sections)."""
    title = f"{title}, {args.threads} thread{'s' if args.threads != 1 else ''}"
    print(f"\n## {title}\n\n{body}")
    if not (args.quick or args.no_write):
        write_section(title, body)
        print(f"\n(written to {RESULTS})")


def synthetic_batches(shape: tuple[int, int, int], batch: int, count: int,
                      seed: int = 0) -> list[torch.Tensor]:
    """Dequantised 8-bit batches in [-0.5, 0.5) (pixel content does not change the arithmetic)."""
    from glow_lightning.ops import bins_to_float, dequantize

    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        pixels = torch.randint(0, 256, (batch, *shape), generator=gen, dtype=torch.uint8)
        out.append(dequantize(bins_to_float(pixels), 8, generator=gen))
    return out
