"""The evaluation maths against independent computations: AUROC against counted pairs, the
importance-weighted bound against a brute-force logmeanexp on a float64 flow, and per-image
bits/dim under 2-process DDP (each test image exactly once, the exact DDP mean and error)."""

from __future__ import annotations

import csv
import itertools
import json
import math
from datetime import timedelta

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from glow_lightning.callbacks import PerImageBits, RunSummary
from glow_lightning.data import build_datamodule
from glow_lightning.evaluate import auroc, mean_and_sem
from glow_lightning.train.evaluation import eval_log_prob, iw_bpd
from glow_lightning.train.module import GlowModule

SHAPE, MODEL = (1, 32, 32), dict(levels=2, steps=1, hidden_channels=8)
N_TEST = 31  # not divisible by the number of processes


def pairs_auroc(inside, outside) -> float:
    """The AUROC by definition: over every (in, out) pair, 1 if out scores higher, 1/2 a tie."""
    wins = [1.0 if o > i else 0.5 if o == i else 0.0
            for i, o in itertools.product(inside, outside)]
    return sum(wins) / len(wins)


@pytest.mark.parametrize("inside, outside, expected", [
    ([1, 2, 3], [4, 5], 1.0),  # every OOD image scores more bits/dim
    ([4, 5], [1, 2, 3], 0.0),  # every OOD image scores fewer (the CIFAR-10 → SVHN finding)
    ([1, 3], [2, 4], 0.75),
    ([2, 2], [2, 2, 2], 0.5),  # all tied
    ([1, 2, 2, 3], [2], 0.5),
])
def test_auroc_hand_computed_cases(inside, outside, expected):
    assert auroc(np.array(inside, float), np.array(outside, float)) == pytest.approx(expected)


def test_auroc_equals_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    inside = rng.integers(0, 20, 37).astype(float)  # many ties
    outside = rng.integers(5, 25, 23).astype(float)
    got = auroc(inside, outside)
    assert got == pytest.approx(pairs_auroc(inside, outside), abs=1e-12)
    assert auroc(outside, inside) == pytest.approx(1 - got, abs=1e-12)  # swapping mirrors it


def test_mean_and_sem_match_numpy():
    values = torch.randn(50, dtype=torch.float64) * 0.3 + 3.0
    mean, sem = mean_and_sem(values.sum(), (values**2).sum(), torch.tensor(50.0,
                                                                            dtype=torch.float64))
    assert float(mean) == pytest.approx(values.numpy().mean(), abs=1e-12)
    assert float(sem) == pytest.approx(values.numpy().std(ddof=1) / math.sqrt(50), abs=1e-12)
    _, single = mean_and_sem(torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0))
    assert math.isnan(float(single))


def _digits(cache, **kw):
    return build_datamodule("digits", cache_dir=cache, batch_size=8, max_train=64,
                            max_test=N_TEST, **kw)


def _module(cache, dtype=torch.float32) -> tuple[GlowModule, torch.Tensor]:
    """A tiny flow initialised on training digits, and 12 test digits (bins)."""
    torch.manual_seed(0)
    module = GlowModule(SHAPE, MODEL).to(dtype)
    dm = _digits(cache)
    dm.setup("fit")
    module.data_init(dm.example_images(16, split="train")[0])
    return module.eval(), dm.example_images(12, split="test")[0]


def test_iw_bound_matches_brute_force_and_is_below_the_single_draw_average(digits_cache):
    module, bins = _module(digits_cache, torch.float64)
    module.iw_samples = K = 6
    draws = np.stack([eval_log_prob(module, bins, draw=k).numpy() for k in range(K)])  # (K, B)
    assert np.abs(draws[0] - draws[1]).min() > 0  # the draws really differ
    D = math.prod(SHAPE)
    top = draws.max(axis=0)  # logmeanexp by hand, float64
    lme = top + np.log(np.mean(np.exp(draws - top), axis=0))
    expected = (-lme + D * math.log(256)) / (D * math.log(2))
    got = iw_bpd(module, bins).numpy()
    assert got == pytest.approx(expected, abs=1e-9)
    single = (-draws + D * math.log(256)) / (D * math.log(2))  # (K, B) bits/dim per draw
    assert (got <= single.mean(axis=0) + 1e-12).all()
    assert (got < single.mean(axis=0)).any()  # strictly tighter somewhere (Jensen's gap)
    # in expectation the bound tightens (weakly) as K grows (Burda et al. 2016, Thm. 1): its
    # average over every K-subset of the draws is non-increasing in K, image by image
    by_k = [np.mean([(-(d.max(0) + np.log(np.mean(np.exp(d - d.max(0)), axis=0)))
                      + D * math.log(256)) / (D * math.log(2))
                     for d in (draws[list(c)] for c in itertools.combinations(range(K), k))],
                    axis=0) for k in range(1, K + 1)]
    assert all((later <= earlier + 1e-12).all() for earlier, later in itertools.pairwise(by_k))
    assert by_k[0] == pytest.approx(single.mean(axis=0)) and by_k[-1] == pytest.approx(got)


def test_iw_with_one_draw_is_test_bpd(digits_cache, tmp_path):
    module, _ = _module(digits_cache)
    module.iw_samples = 1
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        use_distributed_sampler=False, default_root_dir=tmp_path)
    got = trainer.test(module, datamodule=_digits(digits_cache), verbose=False)[0]
    assert got["test/bpd_iw1"] == pytest.approx(got["test/bpd"], abs=1e-6)


def test_per_image_rows_once_each_under_ddp(digits_cache, tmp_path):
    module, _ = _module(digits_cache)
    module.iw_samples = 2
    strategy = DDPStrategy(start_method="fork", timeout=timedelta(seconds=120))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        use_distributed_sampler=False, default_root_dir=tmp_path,
                        callbacks=[PerImageBits(), RunSummary()])
    got = trainer.test(module, datamodule=_digits(digits_cache), verbose=False)[0]
    with (tmp_path / "per_image.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["index"]) for r in rows] == list(range(N_TEST))  # each image once, no padding
    dm = _digits(digits_cache)
    dm.setup("test")
    labels = dm.splits.test.first(N_TEST)[1].tolist()
    assert [int(r["label"]) for r in rows] == labels
    bpd = np.array([float(r["bpd"]) for r in rows])
    iw = np.array([float(r["bpd_iw2"]) for r in rows])
    assert bpd.mean() == pytest.approx(got["test/bpd"], abs=1e-5)
    assert iw.mean() == pytest.approx(got["test/bpd_iw2"], abs=1e-5)
    assert iw.std(ddof=1) / math.sqrt(N_TEST) == pytest.approx(got["test/bpd_iw2_sem"], rel=1e-4)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["test/num_images"] == N_TEST
    assert summary["test/bpd_median"] == pytest.approx(np.median(bpd), abs=1e-6)
