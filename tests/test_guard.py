"""Non-finite guard: a poisoned step is skipped and counted, never applied; too many in a row stop
the run with one line and a loadable checkpoint of the last good weights; DDP ranks agree."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, TensorDataset

import glow_lightning.train.run as run
from glow_lightning.callbacks import SampleGrid
from glow_lightning.cli import main
from glow_lightning.commands.checkpoint import load_module
from glow_lightning.train.guard import NonFiniteGuard
from glow_lightning.train.module import GlowModule

SHAPE = (1, 8, 8)
NAN = float("nan")


class Poisoned(GlowModule):
    """At the given batch counters the training input (``poison``) turns NaN, a gradient
    (``poison_grads``) turns inf, or the loss gets a NaN constant with finite gradients
    (``poison_loss``); ``poison_rank`` limits the poison to one DDP rank."""

    poison: frozenset[int] = frozenset()
    poison_grads: frozenset[int] = frozenset()
    poison_loss: frozenset[int] = frozenset()
    poison_rank: int | None = None

    def _hit(self, batches: frozenset[int]) -> bool:
        rank_ok = self.poison_rank is None or self.poison_rank == self.global_rank
        return self.training and rank_ok and self.train_batches in batches

    def to_flow_input(self, bins, noise=None):
        x = super().to_flow_input(bins, noise)
        return x * NAN if self._hit(self.poison) else x

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self._hit({b + 1 for b in self.poison_loss}):
            loss = loss + torch.tensor(NAN)  # no gradient path: the gradients stay finite
            self.guard.note_loss(loss)
        return loss

    def on_after_backward(self):
        if self._hit({b + 1 for b in self.poison_grads}):  # the counter moved on in the step
            next(self.flow.parameters()).grad.view(-1)[0] = float("inf")


class Snapshots(Callback):
    """Flow weights and optimiser state after every training batch."""

    def __init__(self) -> None:
        self.flows: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.flows.append({k: v.clone() for k, v in module.flow.state_dict().items()})


def _loader(n: int = 48, batch_size: int = 8) -> DataLoader:
    bins = torch.randint(0, 256, (n, *SHAPE), generator=torch.Generator().manual_seed(0))
    data = TensorDataset(bins.to(torch.uint8), torch.zeros(n, dtype=torch.long))
    return DataLoader(data, batch_size=batch_size)


def _fit(tmp_path: Path, max_steps: int, cls=GlowModule, callbacks=(), **kw):
    torch.manual_seed(0)
    module = cls(SHAPE, dict(levels=2, steps=1, hidden_channels=8),
                 optim=dict(optimizer="adam", lr=1e-2, warmup_steps=1, ema_decay=0.5,
                            max_skipped_in_row=3))
    for key, value in kw.items():
        setattr(module, key, frozenset(value))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, limit_val_batches=0,
                        logger=CSVLogger(tmp_path), log_every_n_steps=1, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        callbacks=list(callbacks), default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=_loader())
    return module, trainer


def _optimizer_state(trainer) -> list[torch.Tensor]:
    state = trainer.optimizers[0].state_dict()["state"]
    return [v for s in state.values() for v in s.values() if torch.is_tensor(v)]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_poisoned_step_is_skipped_counted_and_never_applied(tmp_path):
    snaps = Snapshots()
    module, trainer = _fit(tmp_path / "a", 5, Poisoned, [snaps], poison={2})
    assert module.guard.skipped == 1 and module.guard.in_row == 0
    _assert_same(snaps.flows[2], snaps.flows[1])  # step 2 left the weights alone
    assert any(not torch.equal(snaps.flows[3][k], snaps.flows[2][k]) for k in snaps.flows[3])
    for tensor in [*module.flow.state_dict().values(), *module.ema.state_dict().values(),
                   *_optimizer_state(trainer)]:
        assert torch.isfinite(tensor.float()).all()  # Adam moments never absorbed the NaN
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as handle:
        logged = [float(r["train/skipped_steps"]) for r in csv.DictReader(handle)
                  if r.get("train/skipped_steps")]
    assert logged == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("poison", ["poison", "poison_grads", "poison_loss"])
def test_skipped_last_step_leaves_exactly_the_state_of_the_shorter_run(tmp_path, poison):
    skipped, t_skip = _fit(tmp_path / "a", 3, Poisoned, **{poison: {2}})
    clean, t_clean = _fit(tmp_path / "b", 2)
    assert skipped.guard.skipped == 1
    _assert_same(skipped.flow.state_dict(), clean.flow.state_dict())
    _assert_same(skipped.ema.state_dict(), clean.ema.state_dict())
    for a, b in zip(_optimizer_state(t_skip), _optimizer_state(t_clean), strict=True):
        assert torch.equal(a, b)


def test_guard_counts_in_a_row_and_restores():
    guard = NonFiniteGuard(max_in_row=2)
    params = [torch.nn.Parameter(torch.zeros(3))]
    params[0].grad = torch.tensor([0.0, float("inf"), 1.0])
    assert guard.should_skip(params, lambda t: t) and not guard.tripped
    params[0].grad = torch.zeros(3)
    guard.note_loss(torch.tensor(NAN))
    assert guard.should_skip(params, lambda t: t) and guard.tripped
    assert not guard.should_skip(params, lambda t: t) and guard.in_row == 0
    restored = NonFiniteGuard(2)
    restored.load_state_dict(guard.state_dict())
    assert restored.state_dict() == {"skipped": 2, "in_row": 0}
    assert "\n" not in guard.message(7, "x.ckpt")


TINY = ["model.levels=2", "model.steps=1", "model.hidden_channels=8", "data.max_train=64",
        "data.max_test=16", "data.batch_size=16", "trainer.max_steps=20", "trainer.max_time=null",
        "trainer.enable_progress_bar=false", "logger.kind=none", "callbacks.enabled=false",
        "checkpoint.every_n_steps=2", "optim.max_skipped_in_row=3", "optim.warmup_steps=1"]


def test_too_many_skips_in_a_row_stop_with_one_line_and_a_good_checkpoint(
        tmp_path, digits_cache, monkeypatch, capsys):
    monkeypatch.setattr(Poisoned, "poison", frozenset(range(2, 100)))
    monkeypatch.setattr(run, "GlowModule", Poisoned)
    code = main(["train", *TINY, f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}",
                 "run_name=bad"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: training stopped at step 5: 3 optimiser "
                                            "steps in a row had a non-finite loss or gradient")
    # the weights after step 2 met a poisoned batch next: they never passed; the newest that
    # did are the initial ones (step 0's loss was finite), kept as init.ckpt
    init = tmp_path / "bad" / "checkpoints" / "init.ckpt"
    assert f"last good checkpoint: '{init}'" in err[-1]
    assert main(["test", f"ckpt={init}", f"data.cache_dir={digits_cache}"]) == 0
    assert "optim.lr" in err[-1] and "grad_clip" in err[-1] and "coupling=additive" in err[-1]
    last = tmp_path / "bad" / "checkpoints" / "last.ckpt"
    good = load_module(last)  # nothing was written after the skips began: still step 2's
    before = load_module(tmp_path / "bad" / "checkpoints" / "step0000002.ckpt")
    _assert_same(good.flow.state_dict(), before.flow.state_dict())
    assert all(torch.isfinite(v.float()).all() for v in good.flow.state_dict().values())


def test_the_named_checkpoint_is_the_newest_whose_weights_a_later_step_found_finite(
        tmp_path, digits_cache, monkeypatch, capsys):
    monkeypatch.setattr(Poisoned, "poison", frozenset(range(6, 100)))
    monkeypatch.setattr(run, "GlowModule", Poisoned)
    code = main(["train", *TINY, f"data.cache_dir={digits_cache}", f"out_dir={tmp_path}",
                 "run_name=bad", "checkpoint.keep=1"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    folder = tmp_path / "bad" / "checkpoints"
    # step 6's weights met the poisoned 7th batch; step 4's were followed by finite step 5
    assert code == 2 and f"last good checkpoint: '{folder / 'step0000004.ckpt'}'" in err
    assert sorted(p.name for p in folder.glob("step*.ckpt")) == [  # kept past keep=1
        "step0000004.ckpt", "step0000006.ckpt"]
    assert not (folder / "init.ckpt").exists()  # kept only until a step file passed
    assert main(["test", f"ckpt={folder / 'step0000004.ckpt'}",
                 f"data.cache_dir={digits_cache}"]) == 0


class RankState(Callback):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_end(self, trainer, module):
        state = {k: v.clone() for k, v in module.flow.state_dict().items()}
        state["skipped"] = torch.tensor(module.guard.skipped)
        torch.save(state, self.folder / f"rank{trainer.global_rank}.pt")


@pytest.mark.parametrize("poison", ["poison", "poison_loss"])
def test_ddp_ranks_skip_together_when_one_rank_is_poisoned(tmp_path, poison):
    """A NaN input spreads to every rank through the gradient all-reduce; a NaN loss with finite
    gradients does not, so only the all-reduced decision keeps the ranks together."""
    torch.manual_seed(0)
    module = Poisoned(SHAPE, dict(levels=2, steps=1, hidden_channels=8),
                      optim=dict(lr=1e-2, warmup_steps=1))
    setattr(module, poison, frozenset({1}))
    module.poison_rank = 1
    strategy = DDPStrategy(start_method="fork", timeout=timedelta(seconds=60))
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_steps=3,
                        limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[RankState(tmp_path)], default_root_dir=tmp_path)
    trainer.fit(module, train_dataloaders=_loader())
    states = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert int(states[0]["skipped"]) == int(states[1]["skipped"]) == 1
    _assert_same(states[0], states[1])
    assert all(torch.isfinite(v.float()).all() for v in states[0].values())


def _broken_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint whose ActNorm scales overflow when sampling (exp(300) is inf in float32)."""
    module = GlowModule(SHAPE, dict(levels=2, steps=1, hidden_channels=8))
    module.data_init(next(iter(_loader()))[0])
    with torch.no_grad():
        for name, param in module.flow.named_parameters():
            if name.endswith("logs"):
                param.fill_(-100.0)
    path = tmp_path / "broken.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                "pytorch-lightning_version": L.__version__}, path)
    return path


def test_sample_command_warns_with_the_count_of_nonfinite_values(tmp_path, capsys):
    path = _broken_checkpoint(tmp_path)
    out = tmp_path / "grid.png"
    assert main(["sample", f"ckpt={path}", "n=4", "temperature=1.0", f"out={out}"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: sample ckpt={path} temperature=1.0: ")
    count = int(lines[0].split(": ")[2].split(" of ")[0])
    assert 0 < count <= 4 * 64 and "of 256 sample values were not finite" in lines[0]
    assert out.is_file()


def test_sample_grid_callback_counts_and_reports_nonfinite_samples(tmp_path):
    module = load_module(_broken_checkpoint(tmp_path))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=CSVLogger(tmp_path),
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[SampleGrid((1.0,), num_samples=4)], default_root_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"non-finite sample values \(temperature: count\)"):
        trainer.validate(module, dataloaders=_loader(8))
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as handle:
        row = next(r for r in csv.DictReader(handle) if r.get("samples/nonfinite"))
    assert float(row["samples/nonfinite"]) > 0
