"""Every paper experiment config loads and builds its model (on the meta device: shapes only, no
memory), as the runner builds it (``build_flow`` on the experiment's ``model`` section)."""

import pytest
import torch

from glow_lightning.config import experiment_names, load_config
from glow_lightning.flows import build_flow
from glow_lightning.train.run import build_datamodule

PAPER_BPD = {
    "cifar10_glow": 3.35, "imagenet32_glow": 4.09, "imagenet64_glow": 3.81,
    "lsun_bedroom_glow": 2.38, "lsun_tower_glow": 2.46, "lsun_church_glow": 2.67,
    "realnvp_cifar10": 3.49, "realnvp_imagenet32": 4.28, "realnvp_imagenet64": 3.98,
    "realnvp_lsun_bedroom": 2.72, "realnvp_lsun_tower": 2.81, "realnvp_lsun_church": 3.08,
}
PAPER = [*PAPER_BPD, "celebahq_glow", "cifar10_glow_conditional", "mnist_glow"]
IMAGE_SHAPES = {"cifar10": (3, 32, 32), "imagenet32": (3, 32, 32), "imagenet64": (3, 64, 64),
                "lsun_bedroom": (3, 64, 64), "lsun_tower": (3, 64, 64),
                "lsun_church": (3, 64, 64), "celebahq": (3, 256, 256), "mnist": (1, 32, 32)}


def test_every_paper_experiment_ships():
    assert set(PAPER) <= set(experiment_names())


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_builds_its_model(name):
    cfg = load_config([f"experiment={name}"])
    assert cfg.name == name and cfg.paper_bpd == PAPER_BPD.get(name, cfg.paper_bpd)
    shape = build_datamodule(cfg).image_shape  # known from construction: no data is loaded
    assert shape == IMAGE_SHAPES[cfg.data.name]
    classes = 10 if cfg.model.conditional else 0  # CIFAR-10's classes, without loading labels
    with torch.device("meta"):
        flow = build_flow(shape, cfg.model, num_classes=classes, seed=cfg.seed)
    params = sum(p.numel() for p in flow.parameters())
    print(f"{name}: {cfg.model.architecture} L={cfg.model.levels} K={cfg.model.steps} "
          f"width={cfg.model.hidden_channels} {tuple(shape)} -> {params / 1e6:.2f}M parameters")
    assert params > 1e6
    assert flow.num_classes == classes
    if name == "cifar10_glow":  # about 44M, the size usually quoted for the reference CIFAR-10 Glow
        assert 40e6 < params < 48e6


def test_reference_settings():
    cifar = load_config(["experiment=cifar10_glow"])
    assert (cifar.model.levels, cifar.model.steps, cifar.model.hidden_channels) == (3, 32, 512)
    assert (cifar.model.coupling, cifar.data.n_bits) == ("affine", 8)
    assert cifar.data.batch_size * 8 == 512  # per process x 8 GPUs
    celeba = load_config(["experiment=celebahq_glow"])
    assert (celeba.model.levels, celeba.model.coupling, celeba.data.n_bits) == (6, "additive", 5)
    assert celeba.data.batch_size == 1
    assert load_config(["experiment=imagenet64_glow"]).model.levels == 4
    assert load_config(["experiment=cifar10_glow_conditional"]).model.conditional


def test_realnvp_cifar10_is_the_papers_architecture():
    """Dinh et al. 2017, Sec. 4.1: CIFAR-10 with 8 residual blocks of 64 feature maps, one
    downscale; 3 checkerboard, 3 channel-wise, then 4 checkerboard couplings, each followed by
    batch normalisation; logit preprocessing with alpha = 0.05; L2 5e-5 on the scales only."""
    from glow_lightning.flows import BatchNormFlow, CheckerboardMask, Coupling, Logit, TanhScale
    from glow_lightning.flows.nets import ResNet, WNConv2d

    cfg = load_config(["experiment=realnvp_cifar10"])
    with torch.device("meta"):
        flow = build_flow((3, 32, 32), cfg.model, seed=cfg.seed)
    couplings = [m for m in flow.modules() if isinstance(m, Coupling)]
    kinds = ["checker" if isinstance(c.mask, CheckerboardMask) else "channel" for c in couplings]
    assert kinds == ["checker"] * 3 + ["channel"] * 3 + ["checker"] * 4
    assert all(isinstance(c.scale, TanhScale) and not c.shift_first for c in couplings)
    nets = [c.net for c in couplings]
    assert all(isinstance(n, ResNet) and len(n.blocks) == 8 for n in nets)
    assert [n.inp.v.shape[0] for n in nets] == [64] * 3 + [128] * 7  # doubling at the squeeze
    assert all(isinstance(n.inp, WNConv2d) and isinstance(n.norm, torch.nn.BatchNorm2d)
               for n in nets)
    assert sum(isinstance(m, BatchNormFlow) for m in flow.modules()) == len(couplings)
    logit = flow.levels[0].layers[0]
    assert isinstance(logit, Logit) and logit.alpha == 0.05
    assert (cfg.optim.scale_l2, cfg.optim.weight_decay, cfg.model.learn_top) == (5e-5, 0.0, False)
