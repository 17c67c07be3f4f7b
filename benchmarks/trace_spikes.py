"""Where a run of ``bench_quality`` blows up: one implementation of ours trained step by step as
in a round (same model, seeds, batches and recipe), printing every step whose training loss
jumps above ``--spike`` times the median of the last 50, with each level's share of it (the
prior term of the latent it factors out and its log-det, in bits/dim) and the gradient norm
before any clip, then where the run ends: the first non-finite loss, or the held-out bits/dim.

    python -m benchmarks.trace_spikes --impl ours-tuned --lr 0.003 --recipe plain --seed 2
"""

from __future__ import annotations

import math
import statistics

from benchmarks import bench_quality as bq
from benchmarks import common

HISTORY = 50


def level_bits(out, dims: int) -> str:
    """Each level's (prior, log-det) in bits/dim, finest first."""
    scale = dims * math.log(2)
    return ", ".join(f"L{i}: {float(-p.mean()) / scale:.2f} / {float(-d.mean()) / scale:.2f}"
                     for i, (p, d) in enumerate(zip(out.priors, out.logdets, strict=True)))


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--impl", default="ours-tuned", help="one of ours' keys in benchmarks.peers")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--recipe", default="plain", choices=list(bq.RECIPES))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--spike", type=float, default=2.0)
    args = p.parse_args()
    common.set_threads(args.threads)
    train, held, test = bq.digits_splits()
    cfg = dict(levels=3, steps=8, hidden=128)
    t = bq.make_trainer(args.impl, args.lr, args.recipe, cfg, train, args.seed)
    flow, dims = t.impl.model, math.prod(bq.SHAPE)
    print(f"{common.machine_line(args.threads)}\n{t.impl.name}, lr {args.lr:g}, recipe "
          f"{args.recipe}, seed {args.seed}; per level: prior / log-det bits/dim", flush=True)
    while t.steps < args.steps:
        out = flow(bq.next_batch(t, train, 32))
        loss = -out.log_prob.mean() / (dims * math.log(2))
        recent = statistics.median(t.losses[-HISTORY:]) if t.losses else math.inf
        norm = bq.optimise(t, loss, t.steps / args.steps)  # `decayed` ends with the steps
        if norm is None:
            print(f"step {t.steps - 1}: non-finite loss; the run has diverged")
            return
        if float(loss) + 8 > args.spike * (recent + 8):  # the terms are held, not recomputed
            print(f"step {t.steps - 1}: {float(loss) + 8:.3f} bits/dim "
                  f"({level_bits(out, dims)}), gradient norm {norm:.3g}", flush=True)
    print(f"{t.steps} steps, no non-finite loss")
    for name, x in (("held-out", held), ("test", test)):
        values = bq.per_image_bpd(t.impl, x)
        print(f"{name} bits/dim {float(values.mean()):.4f} (median / worst image "
              f"{bq.spread(values)})")


if __name__ == "__main__":
    main()
