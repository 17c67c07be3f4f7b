"""Every YAML under configs/ loads, validates and builds its model (meta device: shapes only)."""

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from glow_lightning.ablation.spec import ablation_names, load_spec
from glow_lightning.config import compose, configs_root, experiment_names, load_config
from glow_lightning.flows import build_flow
from glow_lightning.train.run import build_datamodule
from tests.test_paper_configs import PAPER

OTHER_EXPERIMENTS = [n for n in experiment_names() if n not in PAPER]  # PAPER: built there


def _build(words):
    cfg = load_config(words)
    shape = build_datamodule(cfg).image_shape  # known at construction: no data is read
    classes = 10 if cfg.model.conditional else 0
    with torch.device("meta"):
        flow = build_flow(shape, cfg.model, num_classes=classes, seed=cfg.seed)
    return cfg, sum(p.numel() for p in flow.parameters())


def test_every_yaml_file_is_covered():
    files = {p.relative_to(configs_root()).as_posix() for p in configs_root().rglob("*.yaml")}
    covered = {f"experiment/{n}.yaml" for n in experiment_names()}
    covered |= {f"ablation/{n}.yaml" for n in ablation_names()}
    covered |= {f"base/{n}.yaml" for n in bases_in_use()
                if (configs_root() / "base" / f"{n}.yaml").is_file()}
    assert files == covered


def bases_in_use() -> set[str]:
    """The ``base:`` names the experiment files give (every base file must serve one)."""
    names: set[str] = set()
    for path in (configs_root() / "experiment").glob("*.yaml"):
        base = OmegaConf.load(path).get("base") or []
        names |= {base} if isinstance(base, str) else set(base)
    return names


def test_experiments_state_only_what_differs_from_their_base():
    """Every paper experiment composes a base; none repeats a value its base already sets."""
    for name in experiment_names():
        own = OmegaConf.load(configs_root() / "experiment" / f"{name}.yaml")
        if name == "digits_glow":
            continue  # the default run stands alone: one file to read
        assert own.get("base"), f"{name} names no base"
        parent = compose(configs_root() / "experiment" / f"{name}.yaml")
        base_only = OmegaConf.merge(*[compose(_base(b)) for b in _list(own.base)])
        repeated = [k for k in _leaves(own) if k not in ("base", "name")
                    and OmegaConf.select(base_only, k) == OmegaConf.select(own, k)
                    and OmegaConf.select(parent, k) is not None]
        assert not repeated, f"{name} repeats its base's {repeated}"


def _list(value):
    return [value] if isinstance(value, str) else list(value)


def _base(name):
    for folder in ("base", "experiment"):
        path = configs_root() / folder / f"{name}.yaml"
        if path.is_file():
            return path
    raise AssertionError(name)


def _leaves(node, prefix=""):
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, DictConfig):
            yield from _leaves(value, path + ".")
        else:
            yield path


@pytest.mark.parametrize("name", OTHER_EXPERIMENTS)
def test_experiment_builds(name):
    cfg, params = _build([f"experiment={name}"])
    print(f"{name}: {params / 1e6:.3f}M parameters")
    assert cfg.name == name and params > 0


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n != "digits" else n for n in ablation_names()])
def test_every_ablation_cell_builds(name):
    spec = load_spec(name)
    sizes = {}
    for cell in spec.grid():
        cfg, sizes[cell.name] = _build(spec.base_overrides() + cell.overrides())
        assert cfg.model.architecture == cell.architecture
    print(f"ablation {name}: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    assert len(sizes) == len(spec.grid())
