"""Training memory at config P (paper CIFAR-10 Glow), batch 16: ours standard vs memory saving vs
peers, plus the throughput cost of memory saving.

    python -m benchmarks.bench_memory
    python -m benchmarks.bench_memory --batches 4,16
    python -m benchmarks.bench_memory --quick     # config S instead of P

Peak memory is peak resident set size in a fresh process per implementation (method in
``benchmarks/memprobe.py``): activation = peak − (libraries + model + Adam state). The throughput
cost of memory saving is timed in one process, standard and memory-saving steps interleaved.
"""

from __future__ import annotations

import torch

from benchmarks import common
from benchmarks.bench_train import train_step
from benchmarks.memprobe import measure
from benchmarks.peers import build

IMPLS = {"ours": "glow-lightning", "ours-ms": "glow-lightning (memory saving)",
         "normflows": "normflows", "freia": "FrEIA"}


def memory_rows(cfg: dict, batch: int, threads: int, shape: tuple[int, int, int]) -> list[dict]:
    out = []
    for key in IMPLS:
        print(f"  {IMPLS[key]} …", flush=True)
        out.append(measure(dict(impl=key, shape=list(shape), batch=batch, threads=threads,
                                timed_steps=1, **cfg)))
    return out


def cost_of_memory_saving(cfg: dict, batch: int, rounds: int, seed: int) -> dict[str, float]:
    batches = common.synthetic_batches(common.SHAPE_S, batch, 2, seed)
    steps = {}
    for key in ("ours", "ours-ms"):
        torch.manual_seed(seed)
        impl = build(key, common.SHAPE_S, **cfg)
        steps[key] = train_step(impl, common.adam(impl.model.parameters()), batches)
    times = common.interleaved(steps, rounds, warmup=1)
    return {k: common.median(v) for k, v in times.items()}


def table_for(results: list[dict], cost: dict[str, float], batch: int) -> str:
    std = next(r for r in results if r["impl"] == "ours")
    rows = []
    for r in results:
        step = cost.get(r["impl"])
        rows.append([batch, IMPLS[r["impl"]], f"{r['params']:,}", f"{r['activation_mib']:.0f}",
                     f"{r['activation_mib'] / std['activation_mib']:.2f}",
                     f"{r['training_peak_mib']:.0f}", f"{r['rss_peak_mib']:.0f}",
                     f"{r['step_s']:.2f}", f"{batch / step:.2f}" if step else "–"])
    return common.table(["batch", "implementation", "parameters", "activation MiB",
                         "activation / ours standard", "training peak MiB (above libraries)",
                         "peak RSS MiB", "step s (alone)", "images/s (interleaved)"], rows)


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--batches", default="16", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds for the cost")
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    label, cfg = ("S", common.CONFIG_S) if args.quick else ("P", common.CONFIG_P)
    parts = []
    for batch in (int(b) for b in args.batches.split(",")):
        print(f"config {label}, batch {batch}: memory probes", flush=True)
        results = memory_rows(cfg, batch, args.threads, common.SHAPE_S)
        print("  interleaved standard vs memory-saving steps …", flush=True)
        cost = cost_of_memory_saving(cfg, batch, 1 if args.quick else args.rounds, args.seed)
        slow = cost["ours-ms"] / cost["ours"]
        parts.append(table_for(results, cost, batch)
                     + f"\n\nMemory saving costs {slow:.2f}× the step time of standard backprop "
                     f"(median of interleaved steps, batch {batch}).")
        print(parts[-1], flush=True)
    body = "\n\n".join([
        common.header(args.threads, load_before),
        f"Config {label}: 3×32×32, L={cfg['levels']}, K={cfg['steps']}, width {cfg['hidden']}, "
        "Adam. Each row is a fresh process (see `benchmarks/memprobe.py`): *activation* = peak "
        "RSS during a training step − RSS after building model + Adam state and one warm-up "
        "step (gradients dropped, `malloc_trim`); *training peak* = peak RSS − RSS after "
        "imports. Memory is measured with peak RSS (`VmHWM`, reset via `/proc/self/clear_refs`).",
        *parts])
    common.report("Memory", body, args)


if __name__ == "__main__":
    main()
