"""Equal-budget quality: each implementation trains for the same wall-clock budget (150 s) on the
embedded MNIST digits, then test bits/dim on the 500 test digits is computed identically for all.

    python -m benchmarks.bench_quality               # 150 s each, time-sliced A B C A B C …
    python -m benchmarks.bench_quality --quick       # 20 s each
    python -m benchmarks.bench_quality --budget 300

Data: ``glow_lightning.data.benchmarks.digits_arrays()`` (fixed 4,500 train / 500 test, uint8
1×28×28) zero-padded to 1×32×32; pixels go through ``glow_lightning.ops`` (8 bits:
``x = bins/256 − 0.5 + U(0, 1/256)``), fresh training noise every step, one fixed noise draw for
the test set shared by all. Bits/dim = ``(−log p(x) + D·log 256) / (D·ln 2)`` over D = 1,024
(the padded image), via ``glow_lightning.ops.bits_per_dim``, for every implementation.

Budgets are interleaved in slices of ``--slice`` seconds (A, B, C, A, B, C, …) so load changes on
the machine hit all alike; a step's time (batch drawing, dequantisation, forward, backward,
optimiser) is charged to its implementation. Every implementation gets the same architecture
size and batch; each uses its library's recommended optimiser recipe (see RECIPES). A step with
a non-finite loss is skipped for all (normflows' Glow example does this).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from benchmarks import common
from benchmarks.peers import Impl, build

SHAPE = (1, 32, 32)
OURS = dict(lr=2e-3, warmup=20, init_images=512, affine_clamp=3.0)  # see RESULTS.md
RECIPES = {
    "ours": (f"Adam lr {OURS['lr']:g}, linear warm-up over {OURS['warmup']} steps, ActNorm data "
             f"init on {OURS['init_images']} images, affine_clamp {OURS['affine_clamp']:g}"),
    "normflows": "Adamax lr 1e-3, weight decay 1e-5 (normflows' Glow example)",
    "freia": "Adam lr 1e-3 (FrEIA's README example)",
}


@dataclass
class Trainer:
    """One implementation's state across time slices."""

    key: str
    impl: Impl
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None
    gen: torch.Generator
    used: float = 0.0
    steps: int = 0
    skipped: int = 0
    losses: list[float] = field(default_factory=list)


def pad(images: torch.Tensor) -> torch.Tensor:
    dy, dx = SHAPE[1] - images.shape[2], SHAPE[2] - images.shape[3]
    return F.pad(images, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))


def to_flow_space(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    from glow_lightning.ops import dequantize, preprocess

    return dequantize(preprocess(images, 8), 8, generator=gen)


def make_trainer(key: str, cfg: dict, train: torch.Tensor, seed: int,
                 our_recipe_for_all: bool = False) -> Trainer:
    torch.manual_seed(seed)
    extra = dict(affine_clamp=OURS["affine_clamp"]) if key == "ours" else {}
    impl = build(key, SHAPE, **cfg, **extra)
    gen = torch.Generator().manual_seed(seed + 1)
    params = impl.model.parameters()
    sched = None
    if key == "ours" or our_recipe_for_all:
        first = torch.randperm(len(train), generator=gen)[: OURS["init_images"]]
        with torch.no_grad():
            impl.nll(to_flow_space(train[first], gen))  # ActNorm data init on a large batch
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=OURS["lr"])
        warm = OURS["warmup"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    elif key == "normflows":
        opt = torch.optim.Adamax(params, lr=1e-3, weight_decay=1e-5)
    else:
        opt = torch.optim.Adam(params, lr=1e-3)
    return Trainer("ours" if our_recipe_for_all else key, impl, opt, sched, gen)


def train_for(t: Trainer, train: torch.Tensor, batch: int, seconds: float, budget: float) -> None:
    t.impl.model.train()
    stop = min(seconds, budget - t.used)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < stop:
        idx = torch.randint(0, len(train), (batch,), generator=t.gen)
        x = to_flow_space(train[idx], t.gen)
        loss = t.impl.nll(x).mean() / (x[0].numel() * math.log(2))
        t.opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            t.opt.step()
            t.losses.append(float(loss))
        else:
            t.skipped += 1
        if t.sched is not None:
            t.sched.step()
        t.steps += 1
    t.used += time.perf_counter() - t0


@torch.no_grad()
def test_bpd(impl: Impl, x_test: torch.Tensor) -> float:
    from glow_lightning.ops import bits_per_dim

    impl.model.eval()
    bpd = [bits_per_dim(-impl.nll(x), x[0].numel(), 8) for x in x_test.split(100)]
    return float(torch.cat(bpd).mean())


def nonfinite_in_samples(impl: Impl) -> int:
    impl.model.eval()
    with torch.inference_mode():
        return int((~torch.isfinite(impl.sample(64, 0.7))).sum())


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--budget", type=float, default=None, help="seconds of training each")
    p.add_argument("--slice", type=float, default=10.0, help="seconds per interleaved slice")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--impls", default="ours,normflows,freia")
    p.add_argument("--our-recipe-for-all", action="store_true",
                   help="train the peers with our recipe too (a check that the gap is not "
                        "just the optimiser settings)")
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    budget = args.budget or (20.0 if args.quick else 150.0)
    cfg = dict(levels=args.levels, steps=args.steps, hidden=args.hidden)
    from glow_lightning.data.benchmarks import digits_arrays

    train_u8, _, test_u8, _ = digits_arrays()
    train, test = pad(train_u8), pad(test_u8)
    x_test = to_flow_space(test, torch.Generator().manual_seed(1234))  # shared test noise
    trainers = [make_trainer(k, cfg, train, args.seed, args.our_recipe_for_all)
                for k in args.impls.split(",")]
    while any(t.used < budget - 1e-3 for t in trainers):
        for t in trainers:
            if t.used < budget - 1e-3:
                train_for(t, train, args.batch, args.slice, budget)
        print("  " + ", ".join(f"{t.impl.name}: {t.used:.0f}s {t.steps} steps" for t in trainers),
              flush=True)
    rows = []
    for t in trainers:
        bpd = test_bpd(t.impl, x_test)
        last = 8 + sum(t.losses[-20:]) / max(1, len(t.losses[-20:]))  # + D·log2(256) / D
        rows.append([t.impl.name, f"{t.impl.params:,}", RECIPES[t.key], f"{t.used:.0f}", t.steps,
                     t.skipped, f"{last:.3f}", f"**{bpd:.4f}**",
                     nonfinite_in_samples(t.impl)])
    body = "\n\n".join([
        common.header(args.threads, load_before),
        f"Budget {budget:.0f} s of training each (wall clock, interleaved {args.slice:.0f} s "
        f"slices), batch {args.batch}; every implementation at L={args.levels}, "
        f"K={args.steps}, width {args.hidden} on 1×32×32 (28×28 digits zero-padded). Test "
        "bits/dim over the 500 test digits with one shared dequantisation noise draw; "
        "train bits/dim is the mean over the last 20 steps (fresh noise, training mode). "
        "The last column counts non-finite pixels in 64 samples at T=0.7.",
        common.table(["implementation", "parameters", "recipe", "train s", "steps",
                       "skipped", "train bits/dim (last 20)", "test bits/dim",
                       "non-finite pixels"], rows)])
    title = "Equal-budget quality (MNIST digits)"
    common.report(title + (", our recipe for all" if args.our_recipe_for_all else ""), body, args)


if __name__ == "__main__":
    main()
