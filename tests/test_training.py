"""Training glue: ActNorm init and test bpd under 2-process CPU DDP, checkpoint reload."""

from datetime import timedelta

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DDPStrategy

from glow_lightning.data import build_datamodule
from glow_lightning.train.module import GlowModule

SHAPE, MODEL = (1, 32, 32), dict(levels=2, steps=1, hidden_channels=8)
N_TEST = 31  # not divisible by the number of processes


class CentreNoise(GlowModule):
    """Deterministic training input (bin centres) so a single-process init can be compared."""

    def to_flow_input(self, bins, noise=None):
        return super().to_flow_input(bins, torch.full(bins.shape, 0.5, dtype=self.dtype))


class Capture(Callback):
    """Each rank saves its first batch and its parameters right after ActNorm init."""

    def __init__(self, folder):
        self.folder = folder

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            torch.save(batch[0], f"{self.folder}/bins{trainer.global_rank}.pt")

    def on_before_optimizer_step(self, trainer, module, optimizer):
        if trainer.global_step == 0:
            state = {k: v.detach().clone() for k, v in module.flow.state_dict().items()}
            torch.save(state, f"{self.folder}/state{trainer.global_rank}.pt")


def _digits(cache, **kw):
    return build_datamodule("digits", cache_dir=cache, batch_size=8, max_train=64,
                            max_test=N_TEST, **kw)


def _ddp_trainer(tmp_path, callbacks=(), **kw):
    strategy = DDPStrategy(start_method="fork", timeout=timedelta(seconds=120))
    return L.Trainer(accelerator="cpu", devices=2, strategy=strategy, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False,
                     use_distributed_sampler=False, default_root_dir=tmp_path,
                     callbacks=list(callbacks), **kw)


def test_ddp_actnorm_init_identical_and_equal_to_union_init(tmp_path, digits_cache):
    torch.manual_seed(0)
    module = CentreNoise(SHAPE, MODEL)
    trainer = _ddp_trainer(tmp_path, [Capture(tmp_path)], max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=_digits(digits_cache))
    states = [torch.load(tmp_path / f"state{r}.pt", weights_only=True) for r in (0, 1)]
    bins = [torch.load(tmp_path / f"bins{r}.pt", weights_only=True) for r in (0, 1)]
    assert not torch.equal(bins[0], bins[1])  # the ranks really saw different data
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
    torch.manual_seed(0)
    single = CentreNoise(SHAPE, MODEL)
    single.data_init(torch.cat(bins))
    reference = single.flow.state_dict()
    names = [k for k in reference if ".bias" in k or ".logs" in k]
    assert any("norm" in k or k.endswith("0.bias") for k in names)
    for key in reference:
        assert torch.allclose(states[0][key].double(), reference[key].double(), atol=1e-5), key


def _trained_module(digits_cache):
    torch.manual_seed(0)
    module = GlowModule(SHAPE, MODEL)
    dm = _digits(digits_cache)
    dm.setup("fit")
    module.data_init(dm.example_images(16, split="train")[0])
    return module


def _per_image_bpd(module, cache):
    import math

    dm = _digits(cache)
    dm.setup("test")
    bins = torch.cat([batch[0] for batch in dm.test_dataloader()])
    assert bins.shape[0] == N_TEST
    with torch.no_grad():
        x = module.to_flow_input(bins, module._eval_noise(bins))
        nats = module.flow.log_prob(x) - math.log(256) * x[0].numel()
    return -nats / (x[0].numel() * math.log(2))


def test_ddp_test_bpd_equals_single_process(tmp_path, digits_cache):
    import json

    from glow_lightning.callbacks import RunSummary

    module = _trained_module(digits_cache)
    # DDP first: under gloo Lightning evaluates with no_grad, and forked ranks leave the parent's
    # module untouched, so the single-process run below sees the very same weights.
    trainer = _ddp_trainer(tmp_path / "ddp", [RunSummary()])
    got = trainer.test(module, datamodule=_digits(digits_cache))[0]
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       use_distributed_sampler=False, default_root_dir=tmp_path)
    expected = single.test(module, datamodule=_digits(digits_cache))[0]
    assert got["test/bpd"] == pytest.approx(expected["test/bpd"], abs=1e-5)
    per_image = _per_image_bpd(module, digits_cache)  # by hand: nats → bits/dim per test image
    assert got["test/bpd"] == pytest.approx(per_image.mean().item(), abs=1e-5)
    assert got["test/bpd_worst"] == pytest.approx(per_image.max().item(), abs=1e-5)
    assert per_image.max() > per_image.mean() + 1e-3  # the two metrics really differ
    counted = json.loads((tmp_path / "ddp" / "summary.json").read_text())["num_images"]
    assert counted == N_TEST  # every test image exactly once, no padded duplicates


def test_load_from_checkpoint_needs_nothing_else(tmp_path, digits_cache):
    torch.manual_seed(0)
    module = GlowModule(SHAPE, MODEL, optim=dict(lr=1e-3, warmup_steps=1))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False,
                        enable_progress_bar=False, use_distributed_sampler=False,
                        default_root_dir=tmp_path, limit_val_batches=0)
    dm = _digits(digits_cache)
    trainer.fit(module, datamodule=dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    before = trainer.test(module, datamodule=dm)[0]["test/bpd"]
    loaded = GlowModule.load_from_checkpoint(path, weights_only=True)
    for key, value in module.flow.state_dict().items():
        assert torch.equal(loaded.flow.state_dict()[key], value), key  # ActNorm not re-initialised
    assert not loaded.needs_data_init()
    tester = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       use_distributed_sampler=False, default_root_dir=tmp_path)
    after = tester.test(loaded, datamodule=_digits(digits_cache))[0]["test/bpd"]
    assert after == pytest.approx(before, abs=1e-6)


@pytest.mark.parametrize("name", ["adam", "adamax"])
def test_optimiser_fast_paths_make_the_plain_update(name):
    """The fused Adam / multi-tensor Adamax of ``make_optimizer`` apply the same update as the
    per-tensor reference loop."""
    from glow_lightning.config import OptimConfig
    from glow_lightning.train.optim import make_optimizer

    torch.manual_seed(0)
    params = torch.nn.ParameterList(torch.randn(s) for s in ((3, 4), (5,), (2, 2, 3, 3)))
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    start = [p.detach().clone() for p in params]
    cfg = OptimConfig(optimizer=name, lr=1e-2)
    fast = make_optimizer(cfg, params)
    cls = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}[name]
    plain = cls(twins, lr=1e-2, betas=tuple(cfg.betas), foreach=False)
    for _ in range(3):
        for p, q in zip(params, twins, strict=True):
            g = torch.randn_like(p)
            p.grad, q.grad = g.clone(), g.clone()
        fast.step()
        plain.step()
    assert all(not torch.equal(p.detach(), p0) for p, p0 in zip(params, start, strict=True))
    for p, q in zip(params, twins, strict=True):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5)
