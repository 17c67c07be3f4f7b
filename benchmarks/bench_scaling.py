"""Scaling of our training step with depth and resolution, with and without memory saving.

    python -m benchmarks.bench_scaling                       # K 8,16,32 × resolution 32,64
    python -m benchmarks.bench_scaling --quick               # K 2,4 × resolution 16,32, width 16

Each cell is a fresh process (``benchmarks/memprobe.py``): L=3, width ``--hidden`` (128), affine
coupling, LU 1×1 conv, batch ``--batch`` (16), 3-channel images, Adam. Reported: median step
time of ``--timed-steps`` steps (after one warm-up step), *activation* memory (peak RSS during a
step − RSS after building the model + Adam state) and the training peak above the libraries.
With memory saving the activation memory should stay roughly flat in K (only one flow step's
activations live at a time) while standard backprop grows linearly.
"""

from __future__ import annotations

from benchmarks import common
from benchmarks.memprobe import measure


def cells(depths: list[int], sizes: list[int]) -> list[tuple[int, int, str]]:
    return [(k, r, impl) for r in sizes for k in depths for impl in ("ours", "ours-ms")]


def run(args) -> list[list[object]]:
    depths = [2, 4] if args.quick else [int(k) for k in args.depths.split(",")]
    sizes = [16, 32] if args.quick else [int(r) for r in args.sizes.split(",")]
    hidden = 16 if args.quick else args.hidden
    results: dict[tuple[int, int, str], dict] = {}
    for k, r, impl in cells(depths, sizes):
        print(f"  K={k} {r}×{r} {impl} …", flush=True)
        results[(k, r, impl)] = measure(dict(
            impl=impl, shape=[3, r, r], levels=3, steps=k, hidden=hidden, batch=args.batch,
            threads=args.threads, timed_steps=args.timed_steps))
    rows = []
    for k, r, impl in cells(depths, sizes):
        res, std = results[(k, r, impl)], results[(k, r, "ours")]
        rows.append([f"{r}×{r}", k, "memory saving" if impl == "ours-ms" else "standard",
                     f"{res['params']:,}", f"{res['step_s']:.2f}",
                     f"{res['step_s'] / std['step_s']:.2f}", f"{res['activation_mib']:.0f}",
                     f"{res['activation_mib'] / std['activation_mib']:.2f}",
                     f"{res['training_peak_mib']:.0f}"])
    return rows


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--depths", default="8,16,32", help="steps per level K, comma-separated")
    p.add_argument("--sizes", default="32,64", help="image resolutions, comma-separated")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--timed-steps", type=int, default=3)
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    rows = run(args)
    body = "\n\n".join([
        common.header(args.threads, load_before),
        f"L=3, width {16 if args.quick else args.hidden}, affine coupling, LU 1×1 conv, "
        f"batch {args.batch}, 3 channels, Adam; one fresh process per row. Step time is the "
        f"median of {args.timed_steps} steps; *activation* = peak RSS during the steps − RSS "
        "after model + Adam state; *training peak* = peak RSS − RSS after imports.",
        common.table(["resolution", "K", "backprop", "parameters", "step s", "time / standard",
                      "activation MiB", "activation / standard", "training peak MiB"], rows)])
    common.report("Scaling with depth and resolution", body, args)


if __name__ == "__main__":
    main()
