"""A checkpoint crafted to run code when unpickled is refused everywhere, and nothing runs."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from glow_lightning.cli import main
from glow_lightning.commands.checkpoint import load_module
from glow_lightning.train.checkpointing import AtomicCheckpointIO
from glow_lightning.train.module import GlowModule
from glow_lightning.train.safe_load import CheckpointRefused, check_checkpoint, unsafe_globals

SHAPE, MODEL = [1, 8, 8], dict(levels=2, steps=1, hidden_channels=8)


class Payload:
    """Unpickling this calls ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoint_dict() -> dict:
    module = GlowModule(SHAPE, MODEL)
    return {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__}


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    """(checkpoint path, marker path): a real GlowModule checkpoint with a payload inside."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({**_checkpoint_dict(), "callbacks": {"Note": Payload(marker)}}, path)
    return path, marker


def test_the_payload_is_real(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"x": Payload(marker)}, tmp_path / "live.ckpt")
    torch.load(tmp_path / "live.ckpt", weights_only=False)  # what an unsafe loader would do
    assert marker.exists()


def _assert_refused(message: str, path: Path) -> None:
    assert "\n" not in message
    assert f"refused to load checkpoint '{path}'" in message
    assert "carries pickled objects (posix.system)" in message


def test_load_module_refuses_without_running_it(evil):
    path, marker = evil
    assert unsafe_globals(path) == ["posix.system"]
    with pytest.raises(CheckpointRefused) as info:
        load_module(path)
    _assert_refused(str(info.value), path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["sample", "test", "interpolate", "train"])
def test_every_command_refuses_with_one_line(evil, command, tmp_path, capsys):
    path, marker = evil
    key = "resume" if command == "train" else "ckpt"
    words = [command, f"{key}={path}"]
    if command == "train":
        words += [f"out_dir={tmp_path / 'runs'}", "logger.kind=none"]
    assert main(words) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err
    _assert_refused(err, path)
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()  # refused before the run directory is made


def test_lightning_resume_path_is_weights_only_even_when_asked_otherwise(evil, tmp_path):
    path, marker = evil
    with pytest.raises(CheckpointRefused):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    bins = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    loader = DataLoader(TensorDataset(bins, torch.zeros(16, dtype=torch.long)), batch_size=8)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False,
                        enable_progress_bar=False, enable_checkpointing=False,
                        plugins=[AtomicCheckpointIO()], default_root_dir=tmp_path)
    with pytest.raises(CheckpointRefused):
        trainer.fit(GlowModule(SHAPE, MODEL), train_dataloaders=loader, ckpt_path=path,
                    weights_only=False)
    assert not marker.exists()


def test_legacy_format_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.ckpt"
    torch.save({"x": Payload(marker)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointRefused) as info:
        check_checkpoint(path)
    _assert_refused(str(info.value), path)
    assert not marker.exists()


def test_damaged_or_missing_files_fail_with_one_line(tmp_path, capsys):
    good = tmp_path / "good.ckpt"
    torch.save(_checkpoint_dict(), good)
    check_checkpoint(good)  # plain tensors and values pass
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes(good.read_bytes()[:1000])
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    for path in (truncated, text):
        assert main(["sample", f"ckpt={path}"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: could not read checkpoint '{path}' (truncated or not a "
                              "torch checkpoint)") and "\n" not in err
    with pytest.raises(CheckpointRefused, match="does not exist"):
        check_checkpoint(tmp_path / "missing.ckpt")
