"""Where the time of a config S training step and of a 64-sample draw goes: convolutions vs rest.

    python -m benchmarks.bench_ceiling           # float32 and bfloat16 rows, every implementation
    python -m benchmarks.bench_ceiling --quick

Every implementation is timed interleaved without the profiler (median wall time per call), then
profiled (``torch.profiler``, CPU) over the same number of calls. The profile splits self CPU
time into convolution kernels (``aten::mkldnn_convolution`` forward, ``aten::convolution_backward``)
and everything else; that fraction of the unprofiled median gives each row's convolution
milliseconds. The convolutions are the same arithmetic in every implementation at a given
precision (same layer shapes and FLOPs), so

    ceiling = fastest peer's time / our convolution time

is the largest speed-up over that peer that any implementation running our convolutions could
reach if everything else cost nothing. It is a measured bound, not a target.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks import common
from benchmarks.bench_sample import N_SAMPLES, TEMPERATURE, digits_like, draw, warm_up
from benchmarks.bench_train import train_step
from benchmarks.peers import PEERS, build

CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward",
            "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward")  # the latter: no oneDNN


def conv_fraction(fn: Callable[[], object], calls: int) -> float:
    """Share of self CPU time spent in convolution kernels over ``calls`` calls of ``fn``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS)
    return conv / total if total else 0.0


def measure(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, tuple[float, float]]:
    """name → (median seconds per call, convolution share of it)."""
    times = common.interleaved(fns, rounds, warmup=2)
    return {name: (common.median(times[name]), conv_fraction(fn, rounds))
            for name, fn in fns.items()}


def rows_for(task: str, stats: dict[str, tuple[float, float]], per_call: str) -> list[list]:
    peers = [n for n in stats if n.startswith(("normflows", "FrEIA"))]
    best = min(peers, key=lambda n: stats[n][0])
    rows = []
    for name, (t, frac) in stats.items():
        conv = t * frac
        ours = not name.startswith(("normflows", "FrEIA"))
        ceiling = f"{stats[best][0] / conv:.2f}×" if ours else "—"
        rows.append([task, name, f"{t * 1e3:.1f}", f"{conv * 1e3:.1f}", f"{(t - conv) * 1e3:.1f}",
                     f"{stats[best][0] / t:.2f}×", ceiling])
    rows.append([task, f"(fastest peer: {best}; times are ms {per_call})", "", "", "", "", ""])
    return rows


def training_fns(names: list[str], seed: int) -> dict[str, Callable[[], object]]:
    batches = common.synthetic_batches(common.SHAPE_S, 16, 4, seed)
    fns = {}
    for name in names:
        torch.manual_seed(seed)
        impl = build(name, common.SHAPE_S, **common.CONFIG_S)
        fns[impl.name] = train_step(impl, common.adam(impl.model.parameters()), batches)
    return fns


def sampling_fns(names: list[str], seed: int, steps: int) -> dict[str, Callable[[], object]]:
    data = digits_like(common.SHAPE_S, 16 * steps, seed)
    fns, bad = {}, {}
    for name in names:
        torch.manual_seed(seed)
        impl = build(name, common.SHAPE_S, **common.CONFIG_S)
        warm_up(impl, data, steps)
        bad[impl.name] = 0
        fns[impl.name] = draw(impl, bad)
    return fns


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    rounds = args.rounds or (3 if args.quick else 9)
    precisions = ("float32", "bfloat16") if common.bf16_kernels() else ("float32",)
    names = ["ours", *PEERS] + (["ours-bf16", *(f"{p}-bf16" for p in PEERS)]
                                if "bfloat16" in precisions else [])
    rows = []
    for task, fns, per_call in (
            ("training step, batch 16", training_fns(names, args.seed), "per step"),
            (f"{N_SAMPLES} samples at T={TEMPERATURE}", sampling_fns(names, args.seed, 5),
             "per draw")):
        print(f"{task}: {rounds} interleaved rounds, then {rounds} profiled calls each …",
              flush=True)
        new = []
        for precision in precisions:
            subset = {n: f for n, f in fns.items() if ("bf16" in n) == (precision == "bfloat16")}
            new += rows_for(f"{task}, {precision}", measure(subset, rounds), per_call)
        print(common.table(HEADERS, new), flush=True)
        rows += new
    body = "\n\n".join([
        common.header(args.threads, load_before),
        "Config S (3×32×32, L=3, K=8, width 128, affine, LU). Each precision is its own "
        "interleaved group: float32 rows against float32 peers, bfloat16 rows (ours: nets only) "
        "against peers under bfloat16 autocast. *conv* is the profiled share of convolution "
        "kernels applied to the unprofiled median; *ceiling* = fastest peer's time ÷ our conv "
        "time, the most any implementation running these convolutions could gain over that "
        "peer." + ("" if common.bf16_kernels() else " No bfloat16 rows: this CPU has no oneDNN "
                   "bfloat16 kernels, so bfloat16 convolutions take a generic fallback."),
        common.table(HEADERS, rows)])
    common.report("Convolution share and speed-up ceiling", body, args)


HEADERS = ["task, precision", "implementation", "time (ms)", "conv (ms)", "rest (ms)",
           "vs fastest peer", "ceiling vs fastest peer"]

if __name__ == "__main__":
    main()
