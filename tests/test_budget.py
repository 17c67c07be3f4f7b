"""Time budget: the planned step count fits the budget, the LR decay ends with it, every DDP rank
gets the same plan, and the plan survives a checkpoint."""

from datetime import timedelta

import lightning as L
import pytest
from lightning.pytorch.strategies import DDPStrategy

from glow_lightning.data import build_datamodule
from glow_lightning.train import budget as budget_mod
from glow_lightning.train.budget import TimeBudget
from glow_lightning.train.module import GlowModule
from glow_lightning.train.optim import lr_factor

SHAPE, MODEL = (1, 32, 32), dict(levels=2, steps=1, hidden_channels=8)
OPTIM = dict(optimizer="adam", lr=1e-3, warmup_steps=2, decay_steps=1000)


class StepClock:
    """A clock that advances ``seconds_per_step`` per optimiser step of ``trainer``: the plan
    then depends only on the step count, not on how busy the machine is."""

    def __init__(self, seconds_per_step: float) -> None:
        self.seconds_per_step = seconds_per_step
        self.trainer: L.Trainer | None = None

    def __call__(self) -> float:
        step = self.trainer.global_step if self.trainer is not None else 0
        return 100.0 + step * self.seconds_per_step


def _fit(tmp_path, digits_cache, monkeypatch, minutes, seconds_per_step, **kw):
    clock = StepClock(seconds_per_step)
    monkeypatch.setattr(budget_mod.time, "monotonic", clock)
    module = GlowModule(SHAPE, MODEL, optim=OPTIM)
    budget = TimeBudget(minutes, first_plan=4, every=5, margin=0.0)
    trainer = L.Trainer(accelerator="cpu", max_steps=kw.pop("max_steps", 500), logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, default_root_dir=tmp_path, callbacks=[budget],
                        use_distributed_sampler=False, **kw)
    clock.trainer = trainer
    dm = build_datamodule("digits", cache_dir=digits_cache, batch_size=8, max_train=64,
                          max_test=16)
    trainer.fit(module, datamodule=dm)
    return trainer, budget


def test_plan_fills_the_budget_and_the_cosine_ends_with_it(tmp_path, digits_cache, monkeypatch):
    # 1 s per step and a 0.5-minute budget: 30 steps, whatever max_steps says (500)
    trainer, budget = _fit(tmp_path, digits_cache, monkeypatch, 0.5, 1.0)
    assert budget.planned == 30 and trainer.global_step == 30
    schedule = trainer.lr_scheduler_configs[0].scheduler.lr_lambdas[0]
    assert schedule.decay_steps == 30
    assert lr_factor(29, 2, schedule.decay_steps) < 0.01  # the last step ran at the decay's end
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_max_steps_stays_an_upper_bound(tmp_path, digits_cache, monkeypatch):
    trainer, budget = _fit(tmp_path, digits_cache, monkeypatch, 0.5, 1.0, max_steps=12)
    assert budget.planned == 12 and trainer.global_step == 12


def test_state_round_trip_keeps_spent_time_and_plan():
    budget = TimeBudget(1.0)
    budget.load_state_dict({"spent": 12.5, "planned": 77})
    restored = TimeBudget(1.0)
    restored.load_state_dict(budget.state_dict())
    assert restored.spent == 12.5 and restored.planned == 77


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="minutes > 0"):
        TimeBudget(0)


class RankClock(StepClock):
    """Rank 1's clock runs twice as fast: without the broadcast the ranks would plan different
    step counts and the one that stops first would leave the other waiting in a collective."""

    def __call__(self) -> float:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return super().__call__() * (1 + rank)


class FinalStep(L.Callback):
    def __init__(self, folder):
        self.folder = folder

    def on_train_end(self, trainer, module):
        (self.folder / f"steps{trainer.global_rank}").write_text(str(trainer.global_step))


def test_ddp_ranks_share_one_plan(tmp_path, digits_cache, monkeypatch):
    clock = RankClock(1.0)
    monkeypatch.setattr(budget_mod.time, "monotonic", clock)
    module = GlowModule(SHAPE, MODEL, optim=OPTIM)
    strategy = DDPStrategy(start_method="fork", timeout=timedelta(seconds=60))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_steps=500,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0, default_root_dir=tmp_path,
                        use_distributed_sampler=False,
                        callbacks=[TimeBudget(0.4, first_plan=4, every=5, margin=0.0),
                                   FinalStep(tmp_path)])
    clock.trainer = trainer
    dm = build_datamodule("digits", cache_dir=digits_cache, batch_size=8, max_train=64,
                          max_test=16)
    trainer.fit(module, datamodule=dm)
    # rank 0's measurement (1 s per step, 24 s budget) decides for both ranks; rank 1 alone
    # would have planned 12
    steps = [int((tmp_path / f"steps{r}").read_text()) for r in (0, 1)]
    assert steps == [24, 24]


@pytest.mark.parametrize("threads,processes,cores,load,fix", [
    (2, 1, 2, 3.5, "trainer.num_threads=1"),   # the busy shared host: one thread each
    (1, 2, 2, 2.2, "trainer.devices=1"),       # make train's two processes beside a busy job
    (8, 1, 16, 12.0, "trainer.num_threads=5"),  # what the free cores still hold
    (2, 1, 2, 0.9, None),                        # just after an install: quiet
    (1, 1, 2, 9.0, None),                        # one thread never waits on a barrier
])
def test_busy_cores_notice_names_a_thread_or_process_count_that_fits(threads, processes, cores,
                                                                     load, fix):
    from glow_lightning.train.launch import busy_cores_notice

    notice = busy_cores_notice(threads, processes, cores, load)
    if fix is None:
        assert notice is None
    else:
        assert notice is not None and "\n" not in notice and notice.endswith(f"{fix} avoids that")
        assert f"load average {load:.1f} on {cores} cores" in notice
