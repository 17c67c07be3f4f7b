"""One registry per choice, one key per concept, one typed config path from load_config to the
builder (checked once), and checkpoints of the older model keys still loading."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from glow_lightning.ablation.grid import PERMUTATIONS, build_grid
from glow_lightning.commands.checkpoint import experiment_of
from glow_lightning.config import load_config
from glow_lightning.data import DATASETS
from glow_lightning.errors import ConfigError
from glow_lightning.flows import build_flow, builder
from glow_lightning.flows.coupling import SCALE_FNS, Coupling, TanhScale, scale_function
from glow_lightning.flows.glow import COUPLINGS, permutation
from glow_lightning.flows.permutations import PERMUTATIONS as FLOW_PERMUTATIONS
from glow_lightning.flows.spec import FlowConfig, from_fields, to_fields
from glow_lightning.train.module import GlowModule
from glow_lightning.train.run import build_module

SMALL = ["model.levels=2", "model.steps=1", "model.hidden_channels=8"]


def test_unknown_names_are_refused_with_the_registry_names():
    with pytest.raises(ConfigError, match="scale_fn='exp' is not supported; allowed values: "
                                          + ", ".join(SCALE_FNS)):
        scale_function("exp", 4, 0.0)  # once silently a tanh scale
    with pytest.raises(ConfigError, match="permutation='lu' is not supported; allowed values: "
                                          + ", ".join(FLOW_PERMUTATIONS)):
        permutation("lu", 4, None)
    with pytest.raises(ConfigError, match="coupling='cubic'"):
        build_flow((1, 8, 8), levels=2, steps=1, hidden_channels=4, coupling="cubic")


def test_the_grid_axes_are_a_selection_of_the_registries():
    assert set(PERMUTATIONS) < set(FLOW_PERMUTATIONS)
    assert {c.coupling for c in build_grid(realnvp=False)} == set(COUPLINGS)
    with pytest.raises(ConfigError, match="permutations='lu' is not supported"):
        build_grid(permutations=["reverse", "lu"])


def test_realnvp_reads_the_one_scale_fn_key_with_its_own_default():
    realnvp = dict(architecture="realnvp", levels=2, steps=1, hidden_channels=4)
    scales = {type(c.scale) for c in build_flow((1, 8, 8), **realnvp).modules()
              if isinstance(c, Coupling)}
    assert scales == {TanhScale}
    glow = build_flow((1, 8, 8), levels=2, steps=1, hidden_channels=4)
    assert not any(isinstance(m, TanhScale) for m in glow.modules())  # Glow's own: sigmoid
    sigmoid = build_flow((1, 8, 8), **realnvp, scale_fn="sigmoid")
    assert not any(isinstance(m, TanhScale) for m in sigmoid.modules())
    with pytest.raises(ConfigError, match="RealNVP's couplings are x·e\\^s \\+ t only"):
        build_flow((1, 8, 8), **realnvp, affine_form="shift_scale")


def test_the_realnvp_grid_cell_keeps_its_own_couplings_under_shared_glow_settings():
    cell = build_grid()[-1]
    cfg = load_config([*SMALL, "model.scale_fn=softclamp", "model.affine_clamp=2",
                       "model.affine_form=shift_scale", *cell.overrides()])
    assert (cfg.model.scale_fn, cfg.model.affine_form) == ("tanh", "scale_shift")
    build_flow((1, 32, 32), cfg.model)


def test_datasets_are_keyed_by_their_own_names():
    assert all(name == module.name for name, module in DATASETS.items())
    assert len(set(DATASETS.values())) == len(DATASETS) and list(DATASETS)[0] == "digits"


def test_the_typed_config_travels_whole_and_is_checked_once(monkeypatch):
    calls = []
    check = builder.check
    monkeypatch.setattr(builder, "check", lambda *a, **k: calls.append(a) or check(*a, **k))
    cfg = load_config(SMALL)
    module = build_module(cfg, (1, 32, 32), 0, 8)
    assert module.flow_cfg is cfg.model and module.optim_cfg is cfg.optim
    assert len(calls) == 1
    model = module.hparams["model"]
    assert model == to_fields(cfg.model) and "compile" not in model and "conditional" not in model
    json.dumps({k: module.hparams[k] for k in ("model", "optim", "experiment")})  # plain values
    again = GlowModule(**module.hparams)  # what load_from_checkpoint does with them
    assert again.flow_cfg == from_fields(model) and len(calls) == 2


def _old_checkpoint(tmp_path, module: GlowModule) -> str:
    """``module``'s checkpoint with the model keys as written before ``scale_fn`` was one key:
    ``realnvp.scale_fn`` plus the Glow ``scale_fn`` and ``affine_form`` RealNVP ignored."""
    hparams = dict(module.hparams)
    model = dict(hparams["model"], scale_fn="sigmoid", affine_form="shift_scale")
    model["realnvp"] = dict(model["realnvp"], scale_fn="tanh")
    experiment = dict(hparams["experiment"])
    experiment["model"] = dict(experiment["model"], **model)
    hparams.update(model=model, experiment=experiment)
    path = str(tmp_path / "old.ckpt")
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams,
                "pytorch-lightning_version": L.__version__}, path)
    return path


def test_checkpoints_with_the_old_realnvp_scale_fn_key_load(tmp_path):
    cfg = load_config([*SMALL, "model.architecture=realnvp", "model.realnvp.blocks=1",
                       "model.scale_fn=null", "model.affine_form=null"])  # RealNVP's own
    module = build_module(cfg, (1, 32, 32), 0, 8).eval()
    loaded = GlowModule.load_from_checkpoint(_old_checkpoint(tmp_path, module),
                                             weights_only=True).eval()
    assert loaded.flow_cfg.scale_fn == "tanh" and loaded.flow_cfg.affine_form is None
    x = torch.rand(2, 1, 32, 32) - 0.5
    with torch.no_grad():
        assert torch.equal(loaded.flow.log_prob(x), module.flow.log_prob(x))
    stored = experiment_of(loaded, [])
    assert (stored.model.scale_fn, stored.model.architecture) == ("tanh", "realnvp")


def test_flow_config_round_trips_through_plain_fields():
    cfg = FlowConfig(architecture="realnvp", scale_fn="sigmoid")
    assert from_fields(to_fields(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown flow setting"):
        from_fields({"stepz": 3})
