"""Samplers own distribution: disjoint train shards, exact eval coverage, exact mid-epoch resume."""

from __future__ import annotations

import itertools

import datasets
import lightning as L
import pytest
import torch

from glow_lightning.data import MNISTDataModule, ShardedEvalSampler, ShardedShuffleSampler
from tests.data_helpers import pixels, save_disk


@pytest.mark.parametrize("n", [7, 8, 1])
def test_eval_sampler_covers_every_index_once(n):
    shards = [list(ShardedEvalSampler(n, rank, world_size=2)) for rank in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(n))
    assert [len(ShardedEvalSampler(n, r, 2)) for r in range(2)] == [len(s) for s in shards]


def test_train_sampler_shards_are_disjoint_equal_and_seeded():
    shards = [list(ShardedShuffleSampler(11, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0]) & set(shards[1])
    assert shards[0] == list(ShardedShuffleSampler(11, seed=3, rank=0, world_size=2))
    other_epoch = ShardedShuffleSampler(11, seed=3, rank=0, world_size=2)
    other_epoch.set_epoch(1)
    assert list(other_epoch) != shards[0]


def test_train_sampler_resumes_with_the_remaining_order():
    sampler = ShardedShuffleSampler(20, seed=1)
    sampler.set_epoch(2)
    iterator = iter(sampler)
    consumed = list(itertools.islice(iterator, 7))
    state = sampler.state_dict()
    assert state == {"epoch": 2, "consumed": 7}
    rest = list(iterator)

    restored = ShardedShuffleSampler(20, seed=1)
    restored.load_state_dict(state)
    restored.set_epoch(2)  # Lightning sets the same epoch again: the skip survives
    assert list(restored) == rest
    assert list(restored) == consumed + rest  # the skip applies once
    assert len(restored) == 20


def test_train_sampler_drops_a_resume_for_another_epoch():
    sampler = ShardedShuffleSampler(10, seed=0)
    sampler.load_state_dict({"epoch": 0, "consumed": 10})
    sampler.set_epoch(1)
    assert len(list(sampler)) == 10


def test_datamodule_state_round_trip_without_trainer(tmp_path):
    source = save_disk(tmp_path / "d", _indexed(40), _indexed(8))
    dm = MNISTDataModule(source, batch_size=4, label_column="label", val_size=0)
    iterator = iter(dm.train_dataloader())
    seen = [next(iterator)[1] for _ in range(3)]
    state = dm.state_dict()
    assert state == {"train_sampler": {"epoch": 0, "consumed": 12}}
    rest = torch.cat([b[1] for b in iterator])

    fresh = MNISTDataModule(source, batch_size=4, label_column="label", val_size=0)
    fresh.load_state_dict(state)
    resumed = torch.cat([b[1] for b in fresh.train_dataloader()])
    assert torch.equal(resumed, rest) and len(torch.cat(seen)) + len(resumed) == 40


def _indexed(n: int) -> datasets.Dataset:
    """n digits whose integer label is their row, to follow samples through training."""
    images = [datasets.Image().encode_example(a) for a in pixels(n, 28)]
    return datasets.Dataset.from_dict(
        {"image": images, "label": list(range(n))},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )


class _Recorder(L.LightningModule):
    """A one-parameter model that records the labels of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[list[int]] = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch[1].tolist())
        return (self.weight - batch[0].float().mean()) ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(source, root, ckpt_path=None, every=None, num_workers=0):
    dm = MNISTDataModule(source, batch_size=4, label_column="label", num_workers=num_workers)
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(
        dirpath=root, filename="{step}", every_n_train_steps=every, save_top_k=-1,
        save_on_train_epoch_end=True)] if every else []
    model = _Recorder()
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, limit_val_batches=0,
                        callbacks=callbacks, enable_checkpointing=bool(every))
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return model.seen


@pytest.mark.parametrize("num_workers", [0, 1])
def test_lightning_resume_continues_the_exact_sample_order(tmp_path, num_workers):
    source = save_disk(tmp_path / "d", _indexed(26), _indexed(4))  # 6 batches of 4 per epoch
    full = _fit(source, tmp_path / "a", every=4, num_workers=num_workers)
    assert len(full) == 18
    for step in (4, 8, 12):  # mid epoch 0, mid epoch 1, end of epoch 1
        ckpt = tmp_path / "a" / f"step={step}.ckpt"
        resumed = _fit(source, tmp_path / f"b{step}", ckpt, every=2, num_workers=num_workers)
        assert resumed == full[step:], step
    twice = _fit(source, tmp_path / "c", ckpt_path=tmp_path / "b4" / "step=10.ckpt")
    assert twice == full[10:]
