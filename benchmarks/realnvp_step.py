"""Where a RealNVP training step's time goes at a tiny setting: seconds per step (median and
worst of ``--steps``) and aten ops per step, for each thread count and residual-block count
asked for, in one process, interleaved round by round (the host's load moves between rounds).

    python -m benchmarks.realnvp_step --threads 1 2 --blocks 8 1 --rounds 3

The model is ``model.architecture=realnvp model.levels=2 model.steps=1
model.hidden_channels=8`` on 1×32×32 images in batches of 16; ``--blocks`` is
``model.realnvp.blocks`` (the paper's 8 unless set). Used for benchmarks/RESULTS.md, "RealNVP at
a tiny setting: where a step's time goes".
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from glow_lightning.flows import build_flow, parameter_count
from glow_lightning.flows.spec import FlowConfig, RealNVPConfig


def make_step(blocks: int, batch: int = 16):
    """A closure running one Adam step of the tiny RealNVP; the flow's parameter count."""
    cfg = FlowConfig(architecture="realnvp", levels=2, steps=1, hidden_channels=8,
                     realnvp=RealNVPConfig(blocks=blocks))
    torch.manual_seed(0)
    flow = build_flow((1, 32, 32), cfg).train()
    opt = torch.optim.Adam(flow.parameters(), 1e-3)
    x = torch.rand(batch, 1, 32, 32) - 0.5

    def step() -> None:
        loss = -flow(x).log_prob.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step, parameter_count(flow)


def ops_per_step(step) -> int:
    with torch.profiler.profile() as prof:
        step()
    return sum(e.count for e in prof.key_averages())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--blocks", type=int, nargs="+", default=[8, 1])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cases = [(t, b) for t in args.threads for b in args.blocks]
    steps = {b: make_step(b) for b in args.blocks}
    times: dict[tuple[int, int], list[float]] = {c: [] for c in cases}
    for _ in range(args.rounds):
        for threads, blocks in cases:
            torch.set_num_threads(threads)
            step = steps[blocks][0]
            step()  # warm-up (oneDNN primitives for this thread count)
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times[(threads, blocks)].append(time.perf_counter() - start)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f}, {os.cpu_count()} cores, torch {torch.__version__}")
    print("| threads | model.realnvp.blocks | parameters | aten ops / step | s / step median "
          "| worst |")
    print("|---|---|---|---|---|---|")
    for threads, blocks in cases:
        torch.set_num_threads(threads)
        step, params = steps[blocks]
        t = times[(threads, blocks)]
        print(f"| {threads} | {blocks} | {params:,} | {ops_per_step(step):,} | "
              f"{statistics.median(t):.3f} | {max(t):.3f} |")


if __name__ == "__main__":
    main()
