"""Training throughput (images/s): model + optimiser loop, no Lightning, peers interleaved.

    python -m benchmarks.bench_train            # config S (batch 16), config P (batch 4, 16)
    python -m benchmarks.bench_train --quick    # config S only, few rounds
    python -m benchmarks.bench_train --compile  # config S only, + glow-lightning with compile_flow
    python -m benchmarks.bench_train --bf16     # config S only, + bfloat16 rows (ours: nets only;
                                                # peers: under torch.autocast)
    python -m benchmarks.bench_train --compile --cpp-wrapper  # compiled with inductor's C++
                                                # wrapper (no Python between kernels; slower
                                                # first compile)

Every implementation runs the same step: ``loss = mean NLL; zero_grad; backward; Adam.step``
(``torch.optim.Adam(fused=True)``, lr 1e-4, the same for all) on the same dequantised batches.
"""

from __future__ import annotations

import math

import torch

from benchmarks import common
from benchmarks.peers import PEERS, Impl, build


def train_step(impl: Impl, opt: torch.optim.Optimizer, batches: list[torch.Tensor]):
    state = {"i": 0}

    def step() -> None:
        x = batches[state["i"] % len(batches)]
        state["i"] += 1
        loss = impl.nll(x).mean() / (x[0].numel() * math.log(2))  # bits/dim up to a constant
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def build_all(names: list[str], cfg: dict, seed: int, compile_ours: bool,
              bf16: bool = False, cpp_wrapper: bool = False) -> list[Impl]:
    impls = []
    for name in names:
        torch.manual_seed(seed)
        impls.append(build(name, common.SHAPE_S, **cfg))
    if compile_ours:
        for net_dtype in ("float32", "bfloat16") if bf16 else ("float32",):
            impls.append(compiled_ours(cfg, seed, net_dtype, cpp_wrapper))
    return impls


def compiled_ours(cfg: dict, seed: int, net_dtype: str, cpp_wrapper: bool = False) -> Impl:
    from benchmarks.peers import ours
    from glow_lightning.flows import build_flow, compile_flow

    torch.manual_seed(seed)
    flow = build_flow(common.SHAPE_S, levels=cfg["levels"], steps=cfg["steps"],
                      hidden_channels=cfg["hidden"], net_dtype=net_dtype)
    label = " (bf16 nets)" if net_dtype == "bfloat16" else ""
    options = {"options": {"cpp_wrapper": True}} if cpp_wrapper else {}
    suffix = " (C++ wrapper)" if cpp_wrapper else ""
    return ours(common.SHAPE_S, **cfg, model=compile_flow(flow, **options),
                name=f"glow-lightning{label} + compile_flow{suffix}")


def run_config(label: str, cfg: dict, batch: int, rounds: int, args, compile_ours: bool) -> list:
    names = ["ours", *PEERS, *([f"ours@{args.baseline}"] if args.baseline else [])]
    if args.bf16:
        names += ["ours-bf16", *(f"{p}-bf16" for p in PEERS)]
    impls = build_all(names, cfg, args.seed, compile_ours, args.bf16, args.cpp_wrapper)
    batches = common.synthetic_batches(common.SHAPE_S, batch, 4, args.seed)
    steps = {impl.name: train_step(impl, common.adam(impl.model.parameters()),
                                   batches) for impl in impls}
    times = common.interleaved(steps, rounds, warmup=2 if label == "S" else 1)
    rate = {name: batch / common.median(ts) for name, ts in times.items()}
    peers = [i.name for i in impls if i.name.startswith(("normflows", "FrEIA"))]
    best_peer = max(peers, key=rate.__getitem__)
    rows = []
    for impl in impls:
        rows.append([label, batch, impl.name, f"{impl.params:,}", f"{rate[impl.name]:.2f}",
                     f"{rate[impl.name] / rate[best_peer]:.2f}×",
                     common.paired_speedup(times[impl.name], times[best_peer]),
                     len(times[impl.name])])
    note = common.baseline_line(times, "glow-lightning", args.baseline)
    if note:
        print(f"config {label}, batch {batch}: {note}", flush=True)
        BASELINE_NOTES.append(f"Config {label}, batch {batch}: {note}")
    return rows


BASELINE_NOTES: list[str] = []


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per config")
    p.add_argument("--compile", action="store_true",
                   help="config S only, with glow-lightning + compile_flow added (own section)")
    p.add_argument("--bf16", action="store_true",
                   help="config S only, with bfloat16 rows added (own section)")
    p.add_argument("--cpp-wrapper", action="store_true",
                   help="with --compile: compile with inductor's C++ wrapper (own section)")
    args = p.parse_args()
    if args.bf16 and not common.bf16_kernels():
        p.error("--bf16: this CPU has no oneDNN bfloat16 kernels (AVX-512 BF16 or AMX), so "
                "bfloat16 rows would time a generic fallback; run without --bf16")
    common.set_threads(args.threads)
    load_before = common.load_average()
    runs = [("S", common.CONFIG_S, 16, args.rounds or (4 if args.quick else 12))]
    if not (args.quick or args.compile or args.bf16):
        runs += [("P", common.CONFIG_P, 4, args.rounds or 4),
                 ("P", common.CONFIG_P, 16, args.rounds or 3)]
    rows = []
    for label, cfg, batch, rounds in runs:
        print(f"config {label}, batch {batch}: {rounds} interleaved rounds …", flush=True)
        new = run_config(label, cfg, batch, rounds, args, args.compile and label == "S")
        print(common.table(HEADERS, new), flush=True)
        rows += new
    body = "\n\n".join([
        common.header(args.threads, load_before),
        "Config S: 3×32×32, L=3, K=8, width 128, affine coupling, LU 1×1 conv. Config P (paper "
        "CIFAR-10): L=3, K=32, width 512. Images/s = batch / median step time; ratio is against "
        "the fastest peer row in the same run (bf16 autocast rows included when present); "
        "*paired* is the median of the per-round ratios with their quartiles. "
        "Optimiser: torch.optim.Adam(fused=True) for all.",
        common.table(HEADERS, rows), *BASELINE_NOTES])
    title = "Training throughput" + (" with compile_flow" if args.compile else "") + (
        " (C++ wrapper)" if args.compile and args.cpp_wrapper else "") + (
        ", bfloat16" if args.bf16 else "")
    common.report(title, body, args)


HEADERS = ["config", "batch", "implementation", "parameters", "images/s", "vs fastest peer",
           "paired (quartiles)", "rounds"]

if __name__ == "__main__":
    main()
