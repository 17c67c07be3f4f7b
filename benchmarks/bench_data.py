"""Data throughput: images/s the DataModule delivers, next to the images/s a model consumes.

    python -m benchmarks.bench_data            # 32x32 and 256x256 PNG datasets, 0/1/2 workers
    python -m benchmarks.bench_data --quick

Each dataset is a Hub-format parquet folder (``plain_text/train-*.parquet``, PNG bytes in
``img``) made from the embedded MNIST digits: tiled to RGB at 32×32 (CIFAR-10's size), and
resized to 256×256 (CelebA-HQ's). Every path decodes PNGs per item, the path of data too big for
memory: map-style with ``in_memory=false`` and ``data.streaming=true``, at 0, 1 and 2 loader
workers; the in-memory path (decoded once at set-up, the default for data under 1 GiB) is shown
for 32×32. Delivered images/s: full training batches drawn for ``--seconds`` after one warm-up
batch. Consumed images/s: a training step (forward, backward, Adam) of the matching model in
this process: config S (L=3, K=8, width 128) at 32×32, and the CelebA-HQ experiment's Glow
(L=6, K=32, width 512, additive, memory saving) at 256×256, batch 1 per process as its config.
"""

from __future__ import annotations

import io
import math
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image

from benchmarks import common
from glow_lightning.data import build_datamodule


def make_dataset(root: Path, side: int, count: int) -> str:
    """``count`` RGB digits at ``side``×``side`` as Hub-format parquet (and 16 test images)."""
    from glow_lightning.data.benchmarks import digits_arrays

    digits = digits_arrays()[0].numpy()  # (N, 1, 28, 28)
    features = datasets.Features({"img": datasets.Image(),
                                  "label": datasets.ClassLabel(num_classes=10)})
    folder = root / f"side{side}" / "plain_text"
    folder.mkdir(parents=True)
    for split, n in (("train", count), ("test", 16)):
        rows: dict[str, list] = {"img": [], "label": []}
        for i in range(n):
            image = Image.fromarray(np.repeat(digits[i % len(digits), 0, :, :, None], 3, axis=2))
            buffer = io.BytesIO()
            image.resize((side, side), Image.Resampling.BICUBIC).save(buffer, format="PNG")
            rows["img"].append({"bytes": buffer.getvalue(), "path": None})
            rows["label"].append(i % 10)
        datasets.Dataset.from_dict(rows, features=features).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet"))
    return str(root / f"side{side}")


def delivered(source: str, name: str, batch: int, workers: int, seconds: float,
              **options: object) -> float:
    """Images/s of one epoch's training loader: the batches after the first (workers are up)
    until ``seconds`` have passed or the epoch ends, timed to the last batch received (the
    end-of-epoch teardown is a per-epoch cost, not throughput)."""
    dm = build_datamodule(name, source=source, batch_size=batch, num_workers=workers,
                          **options)
    dm.setup("fit")
    images, start, last = 0, 0.0, 0.0
    for i, (bins, _, _) in enumerate(dm.train_dataloader()):
        last = time.perf_counter()
        if i == 0:
            start = last
            continue
        images += bins.shape[0]
        if last - start >= seconds:
            break
    return images / (last - start)


def consumed(shape: tuple[int, int, int], batch: int, rounds: int, **model: object) -> float:
    """Images/s of training steps of a Glow at ``shape``, one warm-up step first."""
    from glow_lightning.flows import build_flow

    torch.manual_seed(0)
    flow = build_flow(shape, **model)
    opt = common.adam(flow.parameters())
    x = torch.rand(batch, *shape) - 0.5
    times = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        loss = -flow.log_prob(x).mean() / (math.prod(shape) * math.log(2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return batch / common.median(times[1:])


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--seconds", type=float, default=None, help="loader seconds per row")
    args = p.parse_args()
    common.set_threads(args.threads)
    load_before = common.load_average()
    seconds = args.seconds or (2.0 if args.quick else 8.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        small = make_dataset(Path(tmp), 32, 2000 if args.quick else 20000)
        large = make_dataset(Path(tmp), 256, 200 if args.quick else 1000)
        model_s = consumed((3, 32, 32), 16, 3, levels=3, steps=8, hidden_channels=128)
        celeba = dict(levels=6, steps=32, hidden_channels=512, coupling="additive",
                      memory_saving=True)
        model_l = consumed((3, 256, 256), 1, 1 if args.quick else 2, **celeba)
        cases = [(small, 32, "cifar10", 16, model_s, "config S Glow, batch 16"),
                 (large, 256, "celebahq", 1, model_l, "CelebA-HQ Glow, batch 1")]
        for source, side, name, batch, model_rate, model_name in cases:
            paths = [("map-style, decoded per item", dict(in_memory=False)),
                     ("streamed", dict(streaming=True))]
            if side == 32:
                paths.insert(0, ("map-style, decoded once in memory", dict(in_memory=True)))
            for label, options in paths:
                for workers in (0, 1, 2):
                    rate = delivered(source, name, batch, workers, seconds, **options)
                    print(f"{side}x{side} {label}, {workers} workers: {rate:.0f} images/s",
                          flush=True)
                    rows.append([f"{side}×{side}", label, workers, f"{rate:,.0f}",
                                 f"{model_rate:,.3g} ({model_name})",
                                 f"{rate / model_rate:,.0f}×"])
    body = "\n\n".join([
        common.header(args.threads, load_before),
        f"Delivered: training batches per second × batch size over {seconds:g} s after one "
        "warm-up batch (workers are separate processes; the main process has "
        f"{args.threads} torch thread(s)). Consumed: median training step of the model in "
        "this process. Headroom = delivered / consumed; above 1 the loader is not the "
        "bottleneck. Streams also pay a fixed cost per epoch outside these rates: the shuffle "
        "buffer fills before the first batch, and datasets' parquet reader waits 5 s when an "
        "iterator closes (its workaround for apache/arrow#45214).",
        common.table(["images", "path", "workers", "delivered images/s",
                      "consumed images/s (model)", "headroom"], rows)])
    common.report("Data throughput", body, args)


if __name__ == "__main__":
    main()
