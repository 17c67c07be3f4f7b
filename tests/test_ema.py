"""The EMA of the weights: a decay warmed up as ``min(decay, (1 + t) / (10 + t))``, validation
with both the raw and the averaged weights, and ``optim.ema_eval`` choosing which evaluates."""

from __future__ import annotations

import pytest
import torch

from glow_lightning.config import load_config
from glow_lightning.train.ema import EMA, warm_decay
from glow_lightning.train.run import train
from tests.wandb_reader import find_run_dir, isolate_wandb, read_history

# 64 digits in batches of 16: 4 steps an epoch, 4 epochs, validation after epochs 1 and 3
RUN = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=64",
       "data.max_test=16", "data.batch_size=16", "trainer.max_epochs=4", "trainer.max_steps=-1",
       "trainer.budget_minutes=null", "trainer.max_time=null", "optim.warmup_steps=1",
       "trainer.check_val_every_n_epoch=2", "trainer.enable_progress_bar=false",
       "trainer.num_threads=1", "callbacks.enabled=false", "optim.ema_decay=0.999"]


def test_two_parameter_average_follows_the_warmed_up_decay():
    live = torch.nn.Linear(1, 1)
    ema = EMA(live, decay=0.9)
    expected = None
    for t, value in enumerate([1.0, 3.0, -2.0, 5.0, 0.5]):
        with torch.no_grad():
            live.weight.fill_(value)
            live.bias.fill_(-value)
        ema.update(live)
        d = 0.0 if t == 0 else min(0.9, (1 + t) / (10 + t))  # the first update copies
        expected = value if expected is None else d * expected + (1 - d) * value
        assert ema.shadow.weight.item() == pytest.approx(expected, rel=1e-6)
        assert ema.shadow.bias.item() == pytest.approx(-expected, rel=1e-6)
    assert int(ema.num_updates) == 5
    assert warm_decay(0.9, 4) == pytest.approx(5 / 14)  # still warming up: not 0.9
    assert warm_decay(0.9, 1000) == 0.9


def test_following_the_rate_divides_the_step_weight_by_the_rate_and_copies_at_zero():
    live = torch.nn.Linear(1, 1)
    ema = EMA(live, decay=0.9, follow_lr=True)
    expected = None
    steps = [(1.0, 0.0), (3.0, 1.0), (-2.0, 1.0), (5.0, 0.5), (0.5, 0.2), (4.0, 1.0), (7.0, 0.0)]
    for t, (value, scale) in enumerate(steps):
        with torch.no_grad():
            live.weight.fill_(value)
        ema.update(live, lr_scale=scale)
        weight = 1.0 if t == 0 else min(1.0, (1 - min(0.9, (1 + t) / (10 + t))) / scale
                                        if scale else 1.0)
        expected = value if expected is None else (1 - weight) * expected + weight * value
        assert ema.shadow.weight.item() == pytest.approx(expected, rel=1e-6)
    assert ema.shadow.weight.item() == 7.0  # a rate of 0: the raw weights, exactly
    classic = EMA(live, decay=0.9)  # without follow_lr the rate is ignored
    classic.update(live, lr_scale=0.0)
    with torch.no_grad():
        live.weight.fill_(1.0)
    classic.update(live, lr_scale=0.0)
    assert classic.shadow.weight.item() == pytest.approx(7.0 * 2 / 11 + 1.0 * 9 / 11)  # d=2/11


@pytest.mark.parametrize("follow", [True, False])
def test_an_annealed_run_ends_with_the_average_at_its_raw_weights_when_it_follows_the_rate(
        tmp_path, digits_cache, follow):
    """A cosine to 0 over the whole run: the last steps' rate is ~0, so the rate-following
    average ends at the raw weights bit for bit; the fixed-horizon one still lags."""
    train(load_config([*RUN, "trainer.max_steps=12", "optim.decay_steps=12", "logger.kind=none",
                       f"optim.ema_follow_lr={str(follow).lower()}", f"out_dir={tmp_path}",
                       f"data.cache_dir={digits_cache}", "run_name=anneal"]))
    last = tmp_path / "anneal" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)["state_dict"]
    pairs = [(state[k], state[f"ema.shadow.{k.removeprefix('flow.')}"])
             for k in state if k.startswith("flow.")]
    assert len(pairs) > 10 and int(state["ema.num_updates"]) == 12
    same = all(torch.equal(raw, avg) for raw, avg in pairs)
    assert same == follow


@pytest.mark.parametrize("ema_eval, used", [(True, "val/bpd_ema"), (False, "val/bpd_raw")])
def test_validation_logs_both_weights_and_bpd_is_the_chosen_one(tmp_path, monkeypatch,
                                                                digits_cache, ema_eval, used):
    isolate_wandb(monkeypatch, tmp_path / "wandb_env")
    train(load_config([*RUN, f"optim.ema_eval={str(ema_eval).lower()}", f"out_dir={tmp_path}",
                       f"data.cache_dir={digits_cache}", "run_name=ema"]))
    rows = [r for r in read_history(find_run_dir(tmp_path / "ema")) if "val/bpd_raw" in r]
    assert len(rows) == 2
    for row in rows:
        assert row["val/bpd"] == pytest.approx(row[used], abs=1e-6)
        assert abs(row["val/bpd_raw"] - row["val/bpd_ema"]) > 1e-3  # really two sets of weights


def test_auto_evaluates_with_whichever_weights_won_the_previous_validation(tmp_path, monkeypatch,
                                                                          digits_cache):
    """``optim.ema_eval=auto``: raw weights until a validation finds the EMA lower; from the next
    validation on, ``val/bpd`` is the winner's and ``val/ema_in_use`` says which."""
    isolate_wandb(monkeypatch, tmp_path / "wandb_env")
    train(load_config([*RUN, "optim.ema_eval=auto", "optim.ema_decay=0.9", "optim.lr=0.02",
                       "trainer.max_epochs=8", f"out_dir={tmp_path}",
                       f"data.cache_dir={digits_cache}", "run_name=auto"]))
    rows = [r for r in read_history(find_run_dir(tmp_path / "auto")) if "val/bpd_raw" in r]
    assert len(rows) == 4
    won = False  # raw first
    for row in rows:
        assert row["val/ema_in_use"] == float(won)
        assert row["val/bpd"] == pytest.approx(row["val/bpd_ema" if won else "val/bpd_raw"],
                                               abs=1e-6)
        won = row["val/bpd_ema"] < row["val/bpd_raw"]
    assert {r["val/ema_in_use"] for r in rows} == {0.0, 1.0}  # each won, at this rate and decay


@pytest.mark.parametrize("word, value", [("true", "ema"), ("false", "raw"), ("auto", "auto"),
                                         ("ema", "ema")])
def test_ema_eval_reads_its_old_booleans(word, value):
    assert load_config([f"optim.ema_eval={word}"]).optim.ema_eval == value


def test_an_unknown_ema_eval_is_refused_in_one_line():
    from glow_lightning.errors import ConfigError

    with pytest.raises(ConfigError, match="optim.ema_eval='best' must be ema, raw or auto"):
        load_config(["optim.ema_eval=best"])
