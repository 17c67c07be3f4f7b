"""Shared test set-up: one torch thread (steadier on small CPUs), offline W&B and Hugging Face."""

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Every test starts seeded and on one thread: a run's ``trainer.num_threads`` must not leak
    into later tests (two threads on a busy 2-core machine slow small ops 10-100x)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory):
    """A session-wide cache folder holding the embedded digits as a ``save_to_disk`` dataset."""
    from glow_lightning.data.benchmarks import build_digits_cache

    root = tmp_path_factory.mktemp("glow_cache")
    build_digits_cache(str(root))
    return str(root)
