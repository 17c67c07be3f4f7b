"""Numbers a paper can cite, on real tiny trainings of the embedded digits: validation held out
of train and the test split seen once, at the end; the test on a stated checkpoint recorded in
summary.json and the W&B summary; validation on the test split logged as ``test_monitor/*``;
``glow-lightning test`` with the importance-weighted bound, per-image bits/dim and an OOD check.
"""

from __future__ import annotations

import csv
import json
import zlib

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from glow_lightning.cli import main
from glow_lightning.commands.test import evaluate_checkpoint
from glow_lightning.config import load_config
from glow_lightning.data.benchmarks import digits_arrays
from glow_lightning.train.run import train
from glow_lightning.train.safe_load import load_checkpoint
from tests.data_helpers import save_parquet_folder, table
from tests.wandb_reader import find_run_dir, isolate_wandb, read_history, read_summary

N_TRAIN, N_VAL, N_TEST = 80, 16, 16
RUN = ["model.levels=2", "model.steps=1", "model.hidden_channels=8",
       f"data.max_train={N_TRAIN}", f"data.max_test={N_TEST}", "data.batch_size=16",
       "trainer.max_epochs=3", "trainer.max_steps=-1", "trainer.budget_minutes=null",
       "trainer.max_time=null", "trainer.check_val_every_n_epoch=1",
       "trainer.enable_progress_bar=false", "trainer.num_threads=1", "optim.warmup_steps=2",
       "callbacks.enabled=false"]


def crc(images: torch.Tensor) -> list[int]:
    return [zlib.crc32(image.numpy().tobytes()) for image in images]


class Rows(Callback):
    """Per stage, in order: the split indices and the pixel checksums each batch carried."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[int], list[int]]] = []

    def _note(self, stage: str, batch) -> None:
        self.seen.append((stage, batch[2].tolist(), crc(batch[0])))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._note("train", batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._note("val", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._note("test", batch)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory, digits_cache):
    """Validation held out of train, the test on best.ckpt, the rows every stage saw."""
    root = tmp_path_factory.mktemp("held_out")
    rows = Rows()
    words = [*RUN, f"data.val_size={N_VAL}", "test.checkpoint=best", "test.iw_samples=3",
             "logger.kind=none", "run_name=held", f"out_dir={root}",
             f"data.cache_dir={digits_cache}"]
    results = train(load_config(words), extra_callbacks=[rows])
    return root / "held", rows, results, digits_cache


def test_no_test_image_is_seen_before_the_final_test(held_out):
    from glow_lightning.data import build_datamodule

    _, rows, _, cache = held_out
    stages = [stage for stage, _, _ in rows.seen]
    first_test = stages.index("test")
    assert set(stages[first_test:]) == {"test"} and {"train", "val"} <= set(stages[:first_test])
    dm = build_datamodule("digits", cache_dir=cache, max_train=N_TRAIN, max_test=N_TEST,
                          val_size=N_VAL)
    dm.setup("fit")
    test_pixels = set(crc(dm.splits.test.first(N_TEST)[0]))
    assert len(test_pixels) == N_TEST  # the checksums tell the test images apart
    tested = [i for stage, idx, _ in rows.seen if stage == "test" for i in idx]
    assert sorted(tested) == list(range(N_TEST))  # every test image exactly once
    val_pixels = [p for stage, _, pix in rows.seen if stage == "val" for p in pix]
    assert val_pixels and not test_pixels & set(val_pixels)  # validation never saw a test image
    val_rows, train_rows = dm.splits.val_rows.tolist(), dm.splits.train_rows.tolist()
    seen_val = {val_rows[i] for stage, idx, _ in rows.seen if stage == "val" for i in idx}
    seen_train = {train_rows[i] for stage, idx, _ in rows.seen if stage == "train" for i in idx}
    assert seen_val == set(val_rows) and len(val_rows) == N_VAL
    assert seen_train and not seen_train & seen_val  # disjoint rows of the source train split


def test_summary_records_the_stated_checkpoint_split_and_count(held_out):
    run, _, results, cache = held_out
    summary = json.loads((run / "summary.json").read_text())
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")
    assert summary["test/checkpoint"] == "best"
    assert summary["test/checkpoint_step"] == best["global_step"] == summary["val/bpd_best_step"]
    assert summary["test/split"] == "test" and summary["test/num_images"] == N_TEST
    again = evaluate_checkpoint(str(run / "checkpoints" / "best.ckpt"),
                                [f"data.cache_dir={cache}"])
    assert again["test/bpd"] == pytest.approx(summary["test/bpd"], abs=1e-5)
    assert results["test/bpd_iw3"] == pytest.approx(summary["test/bpd_iw3"])
    assert np.isfinite(summary["test/bpd_iw3_sem"]) and summary["test/bpd_iw3_sem"] > 0


def test_train_writes_every_test_image_once_to_per_image_csv(held_out):
    run, _, _, _ = held_out
    with (run / "per_image.csv").open() as handle:
        lines = list(csv.DictReader(handle))
    assert [int(r["index"]) for r in lines] == list(range(N_TEST))
    bpd = np.array([float(r["bpd"]) for r in lines])
    summary = json.loads((run / "summary.json").read_text())
    assert bpd.mean() == pytest.approx(summary["test/bpd"], abs=1e-5)
    assert np.median(bpd) == pytest.approx(summary["test/bpd_median"], abs=1e-6)
    assert bpd.max() == pytest.approx(summary["test/bpd_worst"], abs=1e-6)
    iw = np.array([float(r["bpd_iw3"]) for r in lines])
    assert iw.mean() == pytest.approx(summary["test/bpd_iw3"], abs=1e-5)
    assert (run / "per_image_hist.png").stat().st_size > 0


def test_best_is_refused_in_one_line_where_validation_is_the_test_split(capsys):
    assert main(["train", "data.val_size=0", "test.checkpoint=best"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config error: test.checkpoint=best") and "\n" not in err
    assert "data.val_size=0" in err


def test_best_without_a_validation_says_where_the_final_weights_are(tmp_path, digits_cache,
                                                                   capsys):
    words = [*RUN, f"data.val_size={N_VAL}", "test.checkpoint=best", "trainer.max_epochs=1",
             "trainer.check_val_every_n_epoch=5", "logger.kind=none", "run_name=noval",
             f"out_dir={tmp_path}", f"data.cache_dir={digits_cache}"]
    assert main(["train", *words]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    last = tmp_path / "noval" / "checkpoints" / "last.ckpt"
    assert err.startswith("error: test.checkpoint=best but no validation ran")
    assert f"ckpt={last}" in err and last.is_file()


@pytest.mark.parametrize("words, needle", [
    (["test.checkpoint=first"], "test.checkpoint='first' must be one of last, best"),
    (["test.iw_samples=0"], "test.iw_samples=0 must be >= 1"),
])
def test_bad_test_keys_are_one_line(words, needle, capsys):
    assert main(["train", *words]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


def test_validation_on_the_test_split_logs_as_test_monitor(tmp_path, digits_cache):
    with pytest.MonkeyPatch.context() as mp:
        isolate_wandb(mp, tmp_path / "wandb_env")
        train(load_config([*RUN, "data.val_size=0", "run_name=paper", f"out_dir={tmp_path}",
                           f"data.cache_dir={digits_cache}"]))
    run = tmp_path / "paper"
    history = read_history(find_run_dir(run))
    keys = {k for row in history for k in row}
    assert "test_monitor/bpd" in keys and not any(k.startswith("val/bpd") for k in keys)
    assert not (run / "checkpoints" / "best.ckpt").exists()  # nothing chosen on test numbers
    summary = json.loads((run / "summary.json").read_text())
    assert "val/bpd_best" not in summary
    assert summary["test/checkpoint"] == "last" and summary["test/checkpoint_step"] == 15
    wandb_summary = read_summary(find_run_dir(run))
    assert wandb_summary["test/checkpoint"] == "last"
    assert wandb_summary["test/num_images"] == N_TEST
    assert wandb_summary["test/bpd_median"] == pytest.approx(summary["test/bpd_median"])
    assert "test/bpd_histogram" in keys
    (entry,) = [r["test/per_image_extremes"] for r in history if "test/per_image_extremes" in r]
    table = json.loads((find_run_dir(run) / "files" / entry["path"]).read_text())
    assert [row[0] for row in table["data"]] == ["worst"] * 8 + ["best"] * 8
    worst = max(float(r["bpd"]) for r in csv.DictReader((run / "per_image.csv").open()))
    assert table["data"][0][3] == pytest.approx(worst)
    # the run's copy of a table names each picture's type; W&B puts the pictures themselves in
    # the run's table artifact
    assert [row[4] for row in table["data"]] == ["Image"] * 16


def inverted_digits(path) -> str:
    """Local Hub-format parquet of test digits with black and white swapped: 24 in its test
    split, 8 in its train split (fewer than the checkpoint's data.val_size: OOD data holds no
    validation split out)."""
    _, _, images, labels = digits_arrays()
    inverted = table(255 - images[:24, 0].numpy(), labels[:24].tolist())
    return save_parquet_folder(path, inverted.select(range(8)), inverted)


def test_command_iw1_reproduces_test_bpd_and_writes_per_image_and_ood(held_out, tmp_path,
                                                                    capsys):
    run, _, _, cache = held_out
    ckpt = run / "checkpoints" / "last.ckpt"
    single = evaluate_checkpoint(str(ckpt), [f"data.cache_dir={cache}"], iw_samples=1)
    assert single["test/bpd_iw1"] == pytest.approx(single["test/bpd"], abs=1e-6)
    ood = inverted_digits(tmp_path / "inverted")
    out = tmp_path / "report"
    assert main(["test", f"ckpt={ckpt}", "iw_samples=2", f"ood={ood}", "ood_samples=10",
                 f"out={out}", f"data.cache_dir={cache}"]) == 0
    assert "test/bpd_iw2 = " in capsys.readouterr().out
    report = json.loads((out / "ood.json").read_text())["sets"]
    counts = {row["name"]: row["num_images"] for row in report}
    assert counts == {"test": N_TEST, ood: N_TEST, "samples T=0.7": 10, "samples T=1.0": 10}
    for row in report:
        assert np.isfinite([row["bpd_mean"], row["bpd_median"], row["auroc"]]).all()
        assert 0.0 <= row["auroc"] <= 1.0
    assert (out / "ood_histograms.png").stat().st_size > 0
    with (out / "per_image.csv").open() as handle:
        assert [int(r["index"]) for r in csv.DictReader(handle)] == list(range(N_TEST))
    metrics = json.loads((out / "test.json").read_text())
    assert metrics["test/num_images"] == N_TEST and np.isfinite(metrics["test/bpd_iw2_sem"])


def test_ood_names_and_shapes_are_checked_in_one_line(held_out, tmp_path, capsys):
    run, _, _, cache = held_out
    ckpt = run / "checkpoints" / "last.ckpt"
    assert main(["test", f"ckpt={ckpt}", "ood=nope", f"out={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "ood='nope' is neither a known dataset nor an existing path" in err
    assert "digits" in err and "\n" not in err
    # colour images cannot become the model's grey ones: refused before any data is read
    assert main(["test", f"ckpt={ckpt}", "ood=cifar10", f"out={tmp_path}",
                 f"data.cache_dir={cache}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "(3, 32, 32)" in err and "(1, 32, 32)" in err and "\n" not in err
