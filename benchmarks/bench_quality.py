"""Equal-budget quality: each implementation trains for the same wall-clock budget on the embedded
MNIST digits; test bits/dim on the 500 test digits are computed identically for all.

    python -m benchmarks.bench_quality                   # 150 s, lr chosen, then 3 rounds
    python -m benchmarks.bench_quality --rounds 0                   # the lr choice alone
    python -m benchmarks.bench_quality --budget 600 --lrs ours-tuned=0.002,freia=0.002,...
    python -m benchmarks.bench_quality --quick

Every implementation is a Glow at L=3, K=8, width 128 on 1×32×32 (28×28 digits zero-padded), batch
32, Adam with a 20-step linear warm-up, and one forward pass over 512 training images first (the
data-dependent ActNorm init of every implementation that has one). Peers are built at their
strongest (``benchmarks/peers.py``); ours is ``ours-tuned`` (``peers.TUNED``: soft-clamped
log-scale, x·e^s + t, no ActNorm inside the coupling nets). **Learning rate and optimiser recipe,
the same rule for all**: each implementation trains ``--budget`` seconds at every lr of {5e-4,
1e-3, 2e-3, 3e-3} under every recipe (``plain``: Adam's default betas, no clip; ``clipped``: β2
0.95 and the gradient norm clipped at 100, the digits experiment's settings; ``decayed``:
``clipped`` with the digits experiment's schedule in time, constant for the first half of the
budget, then a cosine to 0 at its end) with seed 0, and keeps the pair with the lowest bits/dim on
500 held-out *training* digits (never the test split); then ``--rounds`` rounds (seeds 1, 2, …)
train every implementation at its choice and report test bits/dim. Budgets are interleaved in
slices of ``--slice`` seconds (A, B, C, A, B, C, …) so load changes hit all alike; a step's time
(batch, dequantisation, forward, backward, clip, optimiser) is charged to its implementation. A
step with a non-finite loss is skipped for all.

Pixels go through ``glow_lightning.ops`` (8 bits: ``x = bins/256 − 0.5 + U(0, 1/256)``), fresh
training noise every step, one fixed noise draw for held-out and test images shared by all;
bits/dim = ``(−log p(x) + D·log 256) / (D·ln 2)`` over D = 1,024.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from benchmarks import common
from benchmarks.peers import Impl, build

SHAPE = (1, 32, 32)
LRS = (5e-4, 1e-3, 2e-3, 3e-3)
IMPLS = ("ours-tuned", "normflows", "freia")  # "ours" (the reference coupling) on request
WARMUP, INIT_IMAGES, HELD_OUT = 20, 512, 500


@dataclass(frozen=True)
class Recipe:
    """The optimiser side of a training loop: Adam's betas, a gradient-norm clip (or none), and
    the last fraction of the budget over which the learning rate decays to 0 (0: constant)."""

    betas: tuple[float, float]
    clip: float | None
    decay: float = 0.0


# plain: Adam's defaults, no clip; clipped: the digits experiment's optimiser settings
# (configs/experiment/digits_glow.yaml: Adam beta2 0.95, gradient norm clipped at 100);
# decayed: those and the digits experiment's schedule in time (trainer.budget_minutes +
# optim.decay_fraction 0.5): constant for the first half of the budget, then a cosine to 0.
RECIPES = {"plain": Recipe((0.9, 0.999), None), "clipped": Recipe((0.9, 0.95), 100.0),
           "decayed": Recipe((0.9, 0.95), 100.0, 0.5)}


@dataclass
class Trainer:
    """One implementation × learning rate across time slices."""

    key: str
    lr: float
    recipe: str
    impl: Impl
    opt: torch.optim.Optimizer
    gen: torch.Generator
    used: float = 0.0
    steps: int = 0
    skipped: int = 0
    losses: list[float] = field(default_factory=list)


def pad(images: torch.Tensor) -> torch.Tensor:
    dy, dx = SHAPE[1] - images.shape[2], SHAPE[2] - images.shape[3]
    return F.pad(images, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))


def to_flow_space(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    from glow_lightning.ops import bins_to_float, dequantize

    return dequantize(bins_to_float(images, 8), 8, generator=gen)


def digits_splits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The padded training digits (uint8) less the last ``HELD_OUT``, and in flow space those
    held-out digits and the test digits, from one fixed noise draw shared by every run."""
    from glow_lightning.data.benchmarks import digits_arrays

    train_u8, _, test_u8, _ = digits_arrays()
    train_all = pad(train_u8)
    shared = torch.Generator().manual_seed(1234)
    held_out = to_flow_space(train_all[-HELD_OUT:], shared)
    return train_all[:-HELD_OUT], held_out, to_flow_space(pad(test_u8), shared)


def make_trainer(key: str, lr: float, recipe: str, cfg: dict, train: torch.Tensor,
                 seed: int) -> Trainer:
    torch.manual_seed(seed)
    impl = build(key, SHAPE, **cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    first = torch.randperm(len(train), generator=gen)[:INIT_IMAGES]
    with torch.no_grad():
        impl.nll(to_flow_space(train[first], gen))  # ActNorm data init on a large batch
    opt = torch.optim.Adam(impl.model.parameters(), lr=lr, betas=RECIPES[recipe].betas)
    return Trainer(key, lr, recipe, impl, opt, gen)


def lr_factor(recipe: Recipe, step: int, progress: float) -> float:
    """The learning rate's factor at ``step`` with ``progress`` (0 to 1) of the budget spent: a
    linear warm-up over ``WARMUP`` steps, then constant, or the training schedule's cosine
    (``glow_lightning.train.optim.lr_factor``) to 0 over the recipe's last ``decay`` of the budget.

    >>> r = RECIPES["decayed"]
    >>> [round(lr_factor(r, s, p), 3) for s, p in ((0, 0.0), (100, 0.5), (100, 0.75), (9, 1.0))]
    [0.05, 1.0, 0.5, 0.0]
    """
    from glow_lightning.train.optim import lr_factor as schedule

    warm = min(1.0, (step + 1) / WARMUP)
    if recipe.decay <= 0:
        return warm
    ticks = 10_000  # the budget in steps of 0.01%, the unit of the training schedule
    return warm * schedule(round(progress * ticks), 0, ticks, fraction=recipe.decay)


def next_batch(t: Trainer, train: torch.Tensor, batch: int) -> torch.Tensor:
    """``t``'s next training batch in flow space, drawn and dequantised with its generator."""
    idx = torch.randint(0, len(train), (batch,), generator=t.gen)
    return to_flow_space(train[idx], t.gen)


def optimise(t: Trainer, loss: torch.Tensor, progress: float = 0.0) -> float | None:
    """One step of ``t``'s optimiser on ``loss`` (bits/dim) under its recipe, with ``progress``
    of the budget spent; returns the gradient norm before any clip, or None for a non-finite
    loss (the step is skipped)."""
    t.opt.zero_grad(set_to_none=True)
    norm = None
    recipe = RECIPES[t.recipe]
    if torch.isfinite(loss):
        loss.backward()
        clip = recipe.clip if recipe.clip is not None else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(t.impl.model.parameters(), clip))
        for group in t.opt.param_groups:
            group["lr"] = t.lr * lr_factor(recipe, t.steps, progress)
        t.opt.step()
        t.losses.append(float(loss.detach()))
    else:
        t.skipped += 1
    t.steps += 1
    return norm


def train_for(t: Trainer, train: torch.Tensor, batch: int, seconds: float, budget: float) -> None:
    t.impl.model.train()
    stop = min(seconds, budget - t.used)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < stop:
        x = next_batch(t, train, batch)
        progress = (t.used + time.perf_counter() - t0) / budget
        optimise(t, t.impl.nll(x).mean() / (x[0].numel() * math.log(2)), progress)
    t.used += time.perf_counter() - t0


def run_interleaved(trainers: list[Trainer], train: torch.Tensor, batch: int, budget: float,
                    slice_s: float) -> None:
    while any(t.used < budget - 1e-3 for t in trainers):
        for t in trainers:
            if t.used < budget - 1e-3:
                train_for(t, train, batch, slice_s, budget)
        print("  " + ", ".join(f"{t.impl.name}@{t.lr:g}/{t.recipe}: {t.used:.0f}s {t.steps}"
                               for t in trainers), flush=True)


@torch.no_grad()
def per_image_bpd(impl: Impl, x: torch.Tensor) -> torch.Tensor:
    """Bits/dim of each image of ``x``; NaN or inf (a broken model) stays visible as such."""
    from glow_lightning.ops import bits_per_dim

    impl.model.eval()
    return torch.cat([bits_per_dim(-impl.nll(part), part[0].numel(), 8)
                      for part in x.split(100)])


def bpd_on(impl: Impl, x: torch.Tensor) -> float:
    """Mean bits/dim over ``x``."""
    return float(per_image_bpd(impl, x).mean())


def spread(values: torch.Tensor) -> str:
    """Median and worst image of per-image bits/dim: how far one image carries the mean."""
    return f"{float(values.median()):.4f} / {float(values.max()):.4g}"


def nonfinite_in_samples(impl: Impl) -> int:
    impl.model.eval()
    torch.manual_seed(99)
    with torch.inference_mode():
        return int((~torch.isfinite(impl.sample(64, 0.7))).sum())


Choice = tuple[float, str]  # (learning rate, recipe)


def choose(keys: list[str], recipes: list[str], cfg: dict, train: torch.Tensor,
           held_out: torch.Tensor, args) -> tuple[dict[str, Choice], list[list]]:
    """The (lr, recipe) of every implementation by the rule of the module docstring, and the
    table of every candidate's held-out bits/dim."""
    trainers = [make_trainer(k, lr, r, cfg, train, 0)
                for k in keys for r in recipes for lr in args.candidates]
    run_interleaved(trainers, train, args.batch, args.budget, args.slice)
    scores = {(t.key, t.lr, t.recipe): bpd_on(t.impl, held_out) for t in trainers}
    chosen = {}
    for key in keys:
        finite = {(lr, r): v for (k, lr, r), v in scores.items() if k == key and math.isfinite(v)}
        chosen[key] = (min(finite, key=finite.__getitem__) if finite
                       else (args.candidates[0], recipes[0]))
    rows = [[t.impl.name, t.recipe, f"{t.lr:g}", t.steps, t.skipped,
             f"{scores[(t.key, t.lr, t.recipe)]:.4f}",
             "**chosen**" if chosen[t.key] == (t.lr, t.recipe) else ""] for t in trainers]
    return chosen, rows


def parse_choices(text: str) -> dict[str, Choice]:
    """``impl=lr[:recipe],…`` (recipe ``plain`` when omitted)."""
    out = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        lr, _, recipe = value.partition(":")
        out[key] = (float(lr), recipe or "plain")
    return out


def run_rounds(keys: list[str], chosen: dict[str, Choice], cfg: dict, train: torch.Tensor,
               x_test: torch.Tensor, args, rounds: range) -> tuple[list[list], dict]:
    """Every implementation at its choice, interleaved, for each round (seed = round)."""
    rows, per_round = [], {k: [] for k in keys}
    for r in rounds:
        print(f"round {r}: {chosen}", flush=True)
        trainers = [make_trainer(k, *chosen[k], cfg, train, r) for k in keys]
        run_interleaved(trainers, train, args.batch, args.budget, args.slice)
        for t in trainers:
            values = per_image_bpd(t.impl, x_test)
            bpd = float(values.mean())
            per_round[t.key].append(bpd)
            last = 8 + statistics.fmean(t.losses[-20:]) if t.losses else math.nan
            rows.append([r, t.impl.name, f"{t.impl.params:,}", t.recipe, f"{t.lr:g}",
                         f"{t.used:.0f}", t.steps, t.skipped, f"{last:.3f}", f"**{bpd:.4f}**",
                         spread(values), nonfinite_in_samples(t.impl)])
    return rows, per_round


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--budget", type=float, default=None, help="seconds of training each")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds after the lr choice (0: choose learning rates only)")
    p.add_argument("--first-round", type=int, default=1,
                   help="number (and seed) of the first round: processes can share the rounds")
    p.add_argument("--slice", type=float, default=10.0, help="seconds per interleaved slice")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--recipes", default=",".join(RECIPES), help="candidates in the choice")
    p.add_argument("--lrs", default="", help="skip the choice: impl=lr[:recipe],...")
    p.add_argument("--candidates", default=",".join(f"{lr:g}" for lr in LRS),
                   help="the choice's learning rates (a part of them: processes can share it)")
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    args.budget = args.budget or (20.0 if args.quick else 150.0)
    n_rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    rounds = range(args.first_round, args.first_round + n_rounds)
    cfg = dict(levels=args.levels, steps=args.steps, hidden=args.hidden)
    train, held_out, x_test = digits_splits()
    keys, recipes = args.impls.split(","), args.recipes.split(",")
    args.candidates = [float(lr) for lr in args.candidates.split(",")]
    chosen = parse_choices(args.lrs)
    lr_rows: list[list] = []
    if set(keys) - chosen.keys():
        open_keys = [k for k in keys if k not in chosen]
        print(f"choosing: {len(open_keys)} implementations × {len(recipes)} recipes × "
              f"{len(args.candidates)} lrs", flush=True)
        picked, lr_rows = choose(open_keys, recipes, cfg, train, held_out, args)
        chosen.update(picked)
    rows, per_round = run_rounds(keys, chosen, cfg, train, x_test, args, rounds)
    body = "\n\n".join([
        common.header(args.threads, load_before),
        f"Budget {args.budget:.0f} s of training each (wall clock, interleaved "
        f"{args.slice:.0f} s slices), batch {args.batch}; every implementation at "
        f"L={args.levels}, K={args.steps}, width {args.hidden} on 1×32×32. Adam with a "
        f"{WARMUP}-step warm-up for all; recipe `plain`: Adam's default betas, no clip; "
        "`clipped`: beta2 0.95 and the gradient norm clipped at 100; `decayed`: `clipped` with "
        "the learning rate constant for half the budget, then a cosine to 0 at its end (in "
        "training seconds). Test bits/dim over the 500 "
        "test digits with one shared dequantisation noise draw; train bits/dim is the mean over "
        "the last 20 steps; the last column counts non-finite pixels in 64 samples at T=0.7.",
        *([("Learning rate and recipe choice (seed 0, the same budget, bits/dim on 500 held-out "
            "training digits):\n\n" + common.table(
                ["implementation", "recipe", "lr", "steps", "skipped", "held-out bits/dim", ""],
                lr_rows))] if lr_rows else [f"Choices given: {args.lrs}."]),
        *([common.table(["round", "implementation", "parameters", "recipe", "lr", "train s",
                         "steps", "skipped", "train bits/dim (last 20)", "test bits/dim",
                         "median / worst image", "non-finite pixels"], rows),
           verdict(per_round, keys)] if rows else []),
    ])
    span = "" if args.first_round == 1 else f", rounds {rounds.start}-{rounds.stop - 1}"
    common.report(f"Equal-budget quality (MNIST digits, {args.budget:.0f} s{span})", body, args)


def verdict(per_round: dict[str, list[float]], keys: list[str]) -> str:
    """Whether ``ours-tuned`` is below every peer's bits/dim in every round, round by round."""
    ours = [k for k in keys if k.startswith("ours")]
    peers = [k for k in keys if not k.startswith("ours")]
    if not ours or not peers:
        return ""
    lead = ours[0]
    margins = [min(per_round[p][i] for p in peers) - per_round[lead][i]
               for i in range(len(per_round[lead]))]
    wins = sum(m > 0 for m in margins)
    text = ", ".join(f"{m:+.3f}" for m in margins)
    return (f"Best peer minus `{lead}`, per round (positive: ours lower): {text}; ours lower in "
            f"{wins} of {len(margins)} rounds.")


if __name__ == "__main__":
    main()
