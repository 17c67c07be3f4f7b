"""Scaling of our Glow: step time and peak memory vs depth K ∈ {8, 16, 32} and resolution
∈ {32, 64}, with and without memory saving (L=3, width 128, batch 16, 3 channels).

    python -m benchmarks.bench_scaling
    python -m benchmarks.bench_scaling --quick      # K ∈ {8, 16}, resolution 32 only

Every cell is a fresh process (``benchmarks/memprobe.py``); step times are the median of that
process's timed steps and the cells run one after another, so they are less robust to machine
load than the interleaved benchmarks.
"""

from __future__ import annotations

from benchmarks import common
from benchmarks.memprobe import measure


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--timed-steps", type=int, default=2)
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    depths, sizes = ((8, 16), (32,)) if args.quick else ((8, 16, 32), (32, 64))
    rows = []
    for size in sizes:
        for k in depths:
            cell = {}
            for impl in ("ours", "ours-ms"):
                print(f"resolution {size}, K={k}, {impl} …", flush=True)
                cell[impl] = measure(dict(impl=impl, shape=[3, size, size], levels=3, steps=k,
                                          hidden=128, batch=args.batch, threads=args.threads,
                                          timed_steps=1 if args.quick else args.timed_steps))
            std, ms = cell["ours"], cell["ours-ms"]
            rows.append([f"{size}×{size}", k, f"{std['params']:,}", f"{std['step_s']:.2f}",
                         f"{ms['step_s']:.2f}", f"{ms['step_s'] / std['step_s']:.2f}",
                         f"{std['activation_mib']:.0f}", f"{ms['activation_mib']:.0f}",
                         f"{ms['activation_mib'] / std['activation_mib']:.2f}"])
            print(common.table(HEADERS, rows[-1:]), flush=True)
    body = "\n\n".join([
        common.header(args.threads, load_before),
        f"L=3, width 128, batch {args.batch}, Adam; activation memory = peak RSS − RSS after "
        "model + optimiser state (method in `benchmarks/memprobe.py`). Cells run one after "
        "another in fresh processes (not interleaved).",
        common.table(HEADERS, rows)])
    common.report("Scaling with depth and resolution", body, args)


HEADERS = ["resolution", "K", "parameters", "step s", "step s (memory saving)", "time ratio",
           "activation MiB", "activation MiB (memory saving)", "memory ratio"]

if __name__ == "__main__":
    main()
