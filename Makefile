# Two commands do all the set-up on a fresh machine:
#   make train   create .venv, install, train the default Glow on the embedded MNIST digits
#   make test    create .venv, install, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned in the install step: an unpinned torch can pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
ARGS   ?=
# The default run uses both cores as two DDP processes with one thread each.
TRAIN_ARGS ?= trainer.devices=2 trainer.strategy=ddp trainer.num_threads=1

.PHONY: install train test test-all lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

train: install
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/glow-lightning train $(TRAIN_ARGS) $(ARGS)

test: install
	$(BIN)/python -m pytest

test-all: install
	$(BIN)/python -m pytest -m "slow or not slow"

lint: install
	$(BIN)/ruff check glow_lightning callbacks tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs wandb build *.egg-info
