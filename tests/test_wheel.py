"""What ``pip install .`` users get: the wheel, installed into a fresh environment outside the
source tree, runs every command's ``--help`` and a 10-step ``train``.

The fresh environment is a new venv whose only view of the test environment is a ``.pth`` line
naming its site-packages, for the dependencies: ``.pth`` files inside that folder (the editable
install's finder among them) are not processed, so ``glow_lightning`` can only come from the
wheel. The test fails if the wheel leaves a subpackage or a config file out.
"""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from glow_lightning.cli import COMMANDS
from glow_lightning.config import configs_root

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, timeout=300, **env):
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": "", **env})
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, glow-lightning executable) of a fresh venv holding only the built wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", str(tmp / "dist"), str(ROOT)], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("glow_lightning-*.whl")
    env = tmp / "env"
    venv.create(env, with_pip=False)
    site = next((env / "lib").glob("python*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = env / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
          "--no-index", str(wheel)], cwd=tmp)
    return python, env / "bin" / "glow-lightning", tmp


def test_the_wheel_is_imported_not_the_source_tree(installed):
    python, _, tmp = installed
    out = _run([str(python), "-c", "import glow_lightning.callbacks as c, glow_lightning as g; "
                "from glow_lightning.config import configs_root; "
                "print(g.__file__); print(c.__file__); print(len(list(configs_root().rglob("
                "'*.yaml'))))"], cwd=tmp)
    package, callbacks, yamls = out.split()
    assert str(ROOT) not in package and str(ROOT) not in callbacks
    assert "site-packages" in package and callbacks.endswith("callbacks/__init__.py")
    assert int(yamls) == len(list(configs_root().rglob("*.yaml")))


def source_modules() -> list[str]:
    """Every module of the source tree, as the installed package names it."""
    names = []
    for folder, package in ((ROOT / "glow_lightning", "glow_lightning"),
                            (ROOT / "callbacks", "glow_lightning.callbacks")):
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names.append(".".join((package, *parts)))
    return names


def test_every_source_module_is_in_the_wheel(installed):
    python, _, tmp = installed
    modules = source_modules()
    assert {"glow_lightning.ablation.runner", "glow_lightning.callbacks.samples"} <= set(modules)
    script = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
    _run([str(python), "-c", script, *modules], cwd=tmp)


def test_every_command_help_runs_from_another_directory(installed):
    _, exe, tmp = installed
    assert "experiments:" in _run([str(exe), "--help"], cwd=tmp)
    for name in COMMANDS:
        assert "key=value" in _run([str(exe), name, "--help"], cwd=tmp), name


def test_a_ten_step_train_runs_from_the_wheel(installed, digits_cache):
    _, exe, tmp = installed
    out = _run([str(exe), "train", "trainer.max_steps=10", "trainer.budget_minutes=null",
                "trainer.max_time=null", "model.steps=2", "model.hidden_channels=8",
                "data.max_test=32", "trainer.enable_progress_bar=false", "logger.kind=csv",
                "callbacks.num_samples=4", f"data.cache_dir={digits_cache}",
                f"out_dir={tmp / 'runs'}", "run_name=wheel"], cwd=tmp)
    assert "test/bpd = " in out
    run = tmp / "runs" / "wheel"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()
