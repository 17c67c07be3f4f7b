"""Sampling latency: 64 samples at temperature 0.7, config S, peers interleaved.

    python -m benchmarks.bench_sample                 # briefly trained models, config S
    python -m benchmarks.bench_sample --quick
    python -m benchmarks.bench_sample --ckpt run.ckpt # our trained Lightning checkpoint
    python -m benchmarks.bench_sample --bf16          # + bfloat16 rows (ours: nets only;
                                                      # peers: under torch.autocast)

Each model is first trained for ``--train-steps`` Adam steps on the embedded MNIST digits (padded
to 32×32, repeated over 3 channels) so that its couplings are not the identity, then every draw
runs under ``torch.inference_mode`` (ours is decorated with it; the peers get the same context).
Non-finite pixels are counted over every timed draw of every implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks import common
from benchmarks.peers import PEERS, Impl, build, ours

N_SAMPLES, TEMPERATURE = 64, 0.7


def load_checkpoint_flow(path: str | Path) -> torch.nn.Module:
    """Our flow from a Lightning checkpoint: ``hyper_parameters`` hold ``image_shape``,
    ``model`` (FlowConfig fields), ``num_classes`` and ``seed`` as ``GlowModule`` stores them;
    ``state_dict`` keys are prefixed ``flow.``."""
    from glow_lightning.flows import build_flow

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    hp = _plain(ckpt["hyper_parameters"])
    flow = build_flow(hp["image_shape"], num_classes=hp.get("num_classes", 0),
                      seed=hp.get("seed", 0), **hp.get("model", {}))
    state = {k.removeprefix("flow."): v for k, v in ckpt["state_dict"].items()
             if k.startswith("flow.")}
    flow.load_state_dict(state)
    return flow.eval()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def digits_like(shape: tuple[int, int, int], count: int, seed: int) -> torch.Tensor:
    """Dequantised embedded MNIST digits padded to ``shape`` (channels repeated)."""
    from glow_lightning.data.benchmarks import digits_arrays
    from glow_lightning.ops import bins_to_float, dequantize

    images = digits_arrays()[0][:count]
    c, h, w = shape
    dy, dx = h - images.shape[2], w - images.shape[3]
    images = F.pad(images, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))
    x = bins_to_float(images).repeat(1, c, 1, 1)
    return dequantize(x, 8, generator=torch.Generator().manual_seed(seed))


def warm_up(impl: Impl, data: torch.Tensor, steps: int, batch: int = 16) -> None:
    """ActNorm init on the first batch, then ``steps`` Adam steps (lr 1e-4: the first steps of
    a flow at 1e-3 without warm-up can leave it with non-finite inverses)."""
    impl.model.train()
    opt = common.adam(impl.model.parameters())
    for i in range(max(steps, 1)):
        x = data[(i * batch) % len(data):][:batch]
        loss = impl.nll(x).mean() / x[0].numel()
        if steps:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    impl.model.eval()


def draw(impl: Impl, bad: dict[str, int]):
    def run() -> None:
        with torch.inference_mode():
            x = impl.sample(N_SAMPLES, TEMPERATURE)
        bad[impl.name] += int((~torch.isfinite(x)).sum())

    return run


def arch_from(flow: torch.nn.Module) -> tuple[tuple[int, int, int], dict]:
    """(image_shape, levels/steps/hidden) of a Glow, to build the peers at the same size."""
    from glow_lightning.flows.nets import GlowNet

    nets = [m for m in flow.levels[0].modules() if isinstance(m, GlowNet)]
    if not nets:
        raise ValueError("--ckpt needs a Glow checkpoint (the peers are Glows)")
    hidden = nets[0].conv1.conv.out_channels
    return flow.image_shape, dict(levels=len(flow.levels), steps=len(nets), hidden=hidden)


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--train-steps", type=int, default=None)
    p.add_argument("--ckpt", default=None, help="Lightning checkpoint of our model")
    p.add_argument("--bf16", action="store_true", help="add bfloat16 rows (own section)")
    args = p.parse_args()
    if args.bf16 and not common.bf16_kernels():
        p.error("--bf16: this CPU has no oneDNN bfloat16 kernels (AVX-512 BF16 or AMX), so "
                "bfloat16 rows would time a generic fallback; run without --bf16")
    common.set_threads(args.threads)
    load_before = common.load_average()
    rounds = args.rounds or (3 if args.quick else 11)
    steps = args.train_steps if args.train_steps is not None else (5 if args.quick else 20)
    shape, cfg = common.SHAPE_S, dict(common.CONFIG_S)
    impls = []
    if args.ckpt:
        flow = load_checkpoint_flow(args.ckpt)
        shape, cfg = arch_from(flow)
        impls.append(ours(shape, **cfg, model=flow, name="glow-lightning (checkpoint)"))
    data = digits_like(shape, 16 * max(steps, 1), args.seed)
    names = ([] if args.ckpt else ["ours"]) + list(PEERS)
    names += [f"ours@{args.baseline}"] if args.baseline and not args.ckpt else []
    if args.bf16:
        names += ([] if args.ckpt else ["ours-bf16"]) + [f"{p}-bf16" for p in PEERS]
    for name in names:
        torch.manual_seed(args.seed)
        impl = build(name, shape, **cfg)
        warm_up(impl, data, steps)
        impls.append(impl)
    bad = {impl.name: 0 for impl in impls}  # over every draw, the 2 warm-up draws included
    times = common.interleaved({i.name: draw(i, bad) for i in impls}, rounds, warmup=2)
    drawn = (rounds + 2) * N_SAMPLES * shape[0] * shape[1] * shape[2]
    lat = {name: common.median(ts) for name, ts in times.items()}
    best_peer = min((i.name for i in impls if i.name.startswith(("normflows", "FrEIA"))),
                    key=lat.get)
    rows = [[i.name, f"{i.params:,}", f"{lat[i.name]:.3f}", f"{lat[best_peer] / lat[i.name]:.2f}×",
             common.paired_speedup(times[i.name], times[best_peer]),
             f"{bad[i.name]} / {drawn:,}"] for i in impls]
    body = "\n\n".join([
        common.header(args.threads, load_before),
        f"{N_SAMPLES} samples at T={TEMPERATURE}, {shape[0]}×{shape[1]}×{shape[2]}, "
        f"L={cfg['levels']}, K={cfg['steps']}, width {cfg['hidden']}; each model trained "
        f"{steps} Adam steps first{' (ours: the checkpoint)' if args.ckpt else ''}. Median of "
        f"{rounds} interleaved draws under torch.inference_mode; speed-up is the fastest "
        "peer's latency over this row's; *paired* is the median of the per-round ratios with "
        "their quartiles.",
        common.table(["implementation", "parameters", "seconds / 64 samples",
                      "speed-up vs fastest peer", "paired (quartiles)",
                      "non-finite pixels / all pixels drawn"], rows),
        common.baseline_line(times, "glow-lightning", args.baseline)])
    title = ("Sampling latency" + (", default-run checkpoint" if args.ckpt else "")
             + (", bfloat16" if args.bf16 else ""))
    common.report(title, body, args)


if __name__ == "__main__":
    main()
