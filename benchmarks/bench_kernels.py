"""Could other kernels run our coupling networks faster? Config S shapes, alternatives interleaved.

    python -m benchmarks.bench_kernels
    python -m benchmarks.bench_kernels --quick

Convolutions are most of a config S step and draw (``bench_ceiling``), so this times the three
coupling networks of config S (levels at 16², 8², 4², width 128) computed other ways, each
against the layout the flows use (oneDNN convolutions on channels-last tensors):

* training, batch 16, forward + backward: oneDNN on NCHW tensors; and the convolutions written as
  GEMMs (3×3 input taps gathered once, ``im2col``; the zero conv as one GEMM into 9 taps summed
  back, ``col2im``) with a hand-written backward, so every FLOP is a large matrix product;
* sampling, batch 64, forward only: oneDNN with ReLU fused into the convolution and weights
  pre-packed (``mkldnn._convolution_pointwise``, inference only); the same GEMMs;
* a whole draw of 64 samples split over two threads (32 rows each, one intra-op thread each)
  against one call on two intra-op threads.

Every alternative computes the same function (checked against ours before timing).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from benchmarks import common
from glow_lightning.flows import build_flow
from glow_lightning.flows.builder import channels_last_weights
from glow_lightning.flows.nets import GlowNet

LEVELS = ((16, 6, 12), (8, 12, 24), (4, 24, 48))  # (side, net input channels, output channels)
CL = torch.channels_last


def im2col(x: Tensor) -> Tensor:
    """(B, H, W, C) → (B·H·W, 9C): the 3×3 neighbourhood of every pixel, zero padded."""
    b, h, w, c = x.shape
    xp = x.new_zeros(b, h + 2, w + 2, c)
    xp[:, 1:h + 1, 1:w + 1] = x
    s = xp.stride()
    return xp.as_strided((b, h, w, 3, 3, c), (s[0], s[1], s[2], s[1], s[2], s[3])).reshape(
        b * h * w, 9 * c)


def col2im(z: Tensor, b: int, h: int, w: int) -> Tensor:
    """Adjoint of :func:`im2col`: (B·H·W, 9C) → (B, H, W, C), the 9 taps summed back."""
    c = z.shape[1] // 9
    taps, out = z.view(b, h, w, 3, 3, c), z.new_zeros(b, h + 2, w + 2, c)
    for i in range(3):
        for j in range(3):
            out[:, i:i + h, j:j + w] += taps[:, :, :, i, j]
    return out[:, 1:h + 1, 1:w + 1]


def relu_grad_(g: Tensor, out: Tensor) -> Tensor:
    return torch.ops.aten.threshold_backward.grad_input(g, out, 0.0, grad_input=g)


class GemmNet(torch.autograd.Function):
    """conv3×3 → ReLU → conv1×1 → ReLU → conv3×3 as GEMMs, (B, C, H, W) → (B, C', H, W)."""

    @staticmethod
    def forward(ctx, x, a1, b1, w2, b2, bz, cz):  # type: ignore[override]
        b, _, h, w = x.shape
        cols = im2col(x.permute(0, 2, 3, 1))
        h1 = torch.addmm(b1, cols, a1).relu_()
        h2 = torch.addmm(b2, h1, w2).relu_()
        out = col2im(h2 @ bz, b, h, w) + cz
        ctx.save_for_backward(cols, h1, h2, a1, w2, bz)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        cols, h1, h2, a1, w2, bz = ctx.saved_tensors
        b, _, h, w = g.shape
        gn = g.permute(0, 2, 3, 1)
        gz = im2col(gn)
        gh2 = relu_grad_(gz @ bz.t(), h2)
        gh1 = relu_grad_(gh2 @ w2.t(), h1)
        gx = col2im(gh1 @ a1.t(), b, h, w).permute(0, 3, 1, 2)
        return (gx, cols.t() @ gh1, gh1.sum(0), h1.t() @ gh2, gh2.sum(0), h2.t() @ gz,
                gn.sum((0, 1, 2)))


def folded(net: GlowNet) -> list[Tensor]:
    """The net's weights with ActNorms and the zero conv's scale folded in, conv-shaped:
    [w1, b1, w2, b2, wz, bz]."""
    out = []
    for layer in (net.conv1, net.conv2):
        s = torch.exp(layer.norm.log_scale()).view(-1)
        out += [layer.conv.weight * s.view(-1, 1, 1, 1), layer.norm.bias.view(-1) * s]
    s = torch.exp(net.out.logs * net.out.logscale_factor).view(-1)
    return out + [net.out.conv.weight * s.view(-1, 1, 1, 1), net.out.conv.bias * s]


def gemm_net(net: GlowNet, x: Tensor) -> Tensor:
    w1, b1, w2, b2, wz, bz = folded(net)
    a1 = w1.permute(2, 3, 1, 0).reshape(-1, w1.shape[0])  # rows: (tap, input channel)
    bzm = wz.flip(2, 3).permute(1, 2, 3, 0).reshape(wz.shape[1], -1)  # flipped: taps to sum
    return GemmNet.apply(x, a1, b1, w2.flatten(1).t(), b2, bzm, bz)


def fused_net(packed: list[Tensor], x: Tensor) -> Tensor:
    conv = torch.ops.mkldnn._convolution_pointwise
    w1, b1, w2, b2, wz, bz = packed
    h = conv(x, w1, b1, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
    h = conv(h, w2, b2, [0, 0], [1, 1], [1, 1], 1, "relu", [], "")
    return conv(h, wz, bz, [1, 1], [1, 1], [1, 1], 1, "none", [], "")


def pack(net: GlowNet, batch: int, side: int) -> list[Tensor]:
    reorder = torch.ops.mkldnn._reorder_convolution_weight
    w1, b1, w2, b2, wz, bz = (t.detach() for t in folded(net))
    size = [batch, net.conv2.conv.in_channels, side, side]
    return [reorder(w1, [1, 1], [1, 1], [1, 1], 1, [batch, w1.shape[1], side, side]), b1,
            reorder(w2, [0, 0], [1, 1], [1, 1], 1, size), b2,
            reorder(wz, [1, 1], [1, 1], [1, 1], 1, size), bz]


def nets(batch: int, layout: torch.memory_format) -> list[tuple[GlowNet, Tensor]]:
    """The three config S coupling nets, ActNorms initialised, trained-looking weights."""
    out = []
    for side, c_in, c_out in LEVELS:
        torch.manual_seed(side)
        net = GlowNet(c_in, c_out, 128)
        for p in net.conv1.conv.weight, net.conv2.conv.weight, net.out.conv.weight:
            p.data = p.data.normal_(0, 0.05).contiguous(memory_format=layout)
        x = torch.randn(batch, c_in, side, side).contiguous(memory_format=layout)
        net(x)  # ActNorm data init
        net.out.logs.data.normal_(0, 0.1)
        out.append((net, x.requires_grad_()))
    return out


def training_fns() -> dict[str, Callable[[], object]]:
    def step(pairs, forward):
        grads = [torch.randn_like(net(x)[0]) for net, x in pairs]

        def run() -> None:
            for (net, x), g in zip(pairs, grads, strict=True):
                torch.autograd.grad(forward(net, x), [x, *net.parameters()], g)
        return run

    cl, nchw = nets(16, CL), nets(16, torch.contiguous_format)
    check([gemm_net(n, x) for n, x in cl], [n(x)[0] for n, x in cl])
    return {"oneDNN, channels-last (ours)": step(cl, lambda n, x: n(x)[0]),
            "oneDNN, NCHW": step(nchw, lambda n, x: n(x)[0]),
            "GEMMs, hand-written backward": step(cl, gemm_net)}


def inference_fns() -> dict[str, Callable[[], object]]:
    pairs = nets(64, CL)
    packed = [pack(net, 64, x.shape[2]) for net, x in pairs]
    with torch.inference_mode():
        ours = [net(x)[0] for net, x in pairs]
        check([fused_net(p, x) for p, (_, x) in zip(packed, pairs, strict=True)], ours)
        check([gemm_net(net, x) for net, x in pairs], ours)

    def run(forward):
        def go() -> None:
            with torch.inference_mode():
                for i, (net, x) in enumerate(pairs):
                    forward(i, net, x)
        return go

    return {"oneDNN, channels-last (ours)": run(lambda i, n, x: n(x)[0]),
            "oneDNN, fused ReLU": run(lambda i, n, x: fused_net(folded(n), x)),
            "oneDNN, fused ReLU, pre-packed": run(lambda i, n, x: fused_net(packed[i], x)),
            "GEMMs": run(lambda i, n, x: gemm_net(n, x))}


def draw_fns(threads: int) -> dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    flow = channels_last_weights(build_flow(common.SHAPE_S, levels=3, steps=8,
                                            hidden_channels=128))
    flow(torch.rand(16, *common.SHAPE_S) - 0.5)  # ActNorm data init
    pool = ThreadPoolExecutor(2)

    def half() -> Tensor:
        torch.set_num_threads(max(1, threads // 2))
        return flow.sample(32, 0.7)

    def split() -> None:
        try:
            [f.result() for f in [pool.submit(half) for _ in range(2)]]
        finally:
            torch.set_num_threads(threads)

    return {"one call, 64 rows (ours)": lambda: flow.sample(64, 0.7),
            "2 threads × 32 rows": split}


def check(got: list[Tensor], want: list[Tensor]) -> None:
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), "an alternative computes another net"


def rows_for(task: str, fns: dict[str, Callable[[], object]], rounds: int) -> list[list[str]]:
    times = common.interleaved(fns, rounds, warmup=2)
    ours = next(iter(times))
    return [[task, name, f"{common.median(ts) * 1e3:.1f}",
             common.paired_speedup(ts, times[ours])] for name, ts in times.items()]


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    rounds = args.rounds or (5 if args.quick else 31)
    rows = []
    for task, fns in (("3 coupling nets, forward + backward, batch 16", training_fns()),
                      ("3 coupling nets, forward, batch 64", inference_fns()),
                      ("64 samples at T=0.7, whole flow", draw_fns(args.threads))):
        print(f"{task}: {rounds} interleaved rounds …", flush=True)
        new = rows_for(task, fns, rounds)
        print(common.table(HEADERS, new), flush=True)
        rows += new
    body = "\n\n".join([
        common.header(args.threads, load_before),
        "Config S coupling networks (16², 8², 4² at width 128) computed other ways; *speed-up* is "
        "the median of per-round ratios against the first row of each task (quartiles in "
        "brackets), > 1 is faster than what the flows do now. See the script's docstring.",
        common.table(HEADERS, rows)])
    common.report("Alternative kernels for the coupling networks", body, args)


HEADERS = ["task", "computed as", "median ms", "speed-up vs ours (quartiles)"]

if __name__ == "__main__":
    main()
