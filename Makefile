# Two commands: `make reproduce` (environment + the whole study) and `make test` (lint first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
OUT ?= out/paper
# Training processes for the sweep, one torch thread each: auto starts one per core on the
# CPU (the logs do not depend on their number) and trains in-process on a GPU.
WORKERS ?= auto
# Where pip looks for torch. Empty: pip's configured indexes (PyPI's Linux torch is the CUDA
# build); TORCH_INDEX=https://download.pytorch.org/whl/cpu gets the small CPU build there.
TORCH_INDEX ?=

.PHONY: install reproduce lint test test-slow bench clean

$(BIN)/grokcast: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned, so that the package's own install keeps it.
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/grokcast

install: $(BIN)/grokcast

reproduce: $(BIN)/grokcast
	$(BIN)/grokcast reproduce --config configs/paper.toml --out $(OUT) --workers $(WORKERS)

# ruff with pyproject's rules; mypy on src/grokcast with pyproject's [tool.mypy].
lint: $(BIN)/grokcast
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m mypy

test: $(BIN)/grokcast lint
	$(BIN)/python -m pytest -q

test-slow: $(BIN)/grokcast
	$(BIN)/python -m pytest -q -m slow

# Against the plain loop on 2 threads (the issue's), then dealt over 2 one-thread processes
# as grokcast's side is (the stronger baseline on this machine); about 3 minutes each.
bench: $(BIN)/grokcast
	$(BIN)/python benchmarks/bench_train.py --runs 48 --steps 1000 --plain-runs 4 --threads 1 --workers 2 --dense-until 0
	$(BIN)/python benchmarks/bench_train.py --runs 48 --steps 1000 --plain-runs 4 --threads 1 --workers 2 --dense-until 0 --plain-layout processes

clean:
	rm -rf $(VENV) out
