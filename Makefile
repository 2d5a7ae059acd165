# spadelab: `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
SCALE ?= smoke
DATA ?= synthetic
LOGGER ?= csv
LAUNCHER ?= basic
# torch + torchvision pair that installs from this machine's disk and runs on CPU and CUDA.
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
export GRADIO_ANALYTICS_ENABLED=False

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@# Keep a working torch + torchvision (e.g. a GPU user's CUDA build); otherwise install the pair.
	@$(PY) -c "import torch, torchvision" 2>/dev/null || $(PIP) install -q $(TORCH_PAIR)
	$(PIP) install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## create .venv with torch, torchvision and spadelab (editable, dev extras)

test: $(STAMP) ## run the whole test suite (installs first)
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP) ## the suite without the slow end-to-end tests
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff format check + ruff lint
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/ruff check src tests

format: $(STAMP) ## apply ruff format and the safe lint fixes
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

params: $(STAMP) ## parameter counts of every table row next to the paper's
	$(VENV)/bin/spadelab params

DEMO_ARGS ?=
demo: $(STAMP) ## train SPADE on the synthetic landscapes (~10 min on 2 cores), synthesize, evaluate; DEMO_ARGS=encoder=vae adds style-guided synthesis
	$(PY) -m spadelab.commands.demo $(DEMO_ARGS)

bench: $(STAMP) ## time and memory of one training iteration at the demo configuration -> bench.json
	$(VENV)/bin/spadelab bench

clean: ## remove run outputs (keeps .venv)
	rm -rf runs multirun outputs bench.json

.PHONY: help install test test-fast lint format params demo bench clean

# Results tables: make table4 SCALE=smoke|cpu|paper DATA=... LOGGER=csv|wandb LAUNCHER=...
-include mk/tables.mk

# Browser tools (spadelab[studio]). `make studio` opens the newest finished demo run
# (runs/demo/<stamp>/, from `make demo`; trained first when there is none). STUDIO_ARGS passes
# more, e.g. STUDIO_ARGS='port=8000 device=cuda'. `make table2 STUDY=DIR` reports a study made
# with `spadelab study create` (see README: "Table 2: a preference study").
STUDIO_ARGS ?=
STUDY ?=
studio: $(STAMP) ## paint label maps in the browser on the demo run (trains it first if missing)
	@ckpt=$$(ls -1d runs/demo/*/checkpoints/last.ckpt 2>/dev/null | sort | tail -n 1); \
	if [ -z "$$ckpt" ]; then \
	  echo "[studio] no finished demo run in runs/demo/ yet: training it first (make demo)"; \
	  $(PY) -m spadelab.commands.demo || exit 2; \
	  ckpt=$$(ls -1d runs/demo/*/checkpoints/last.ckpt | sort | tail -n 1); \
	fi; \
	$(VENV)/bin/spadelab studio ckpt=$$(dirname $$(dirname $$ckpt)) $(STUDIO_ARGS)

table2: $(STAMP) ## SPADE Table 2 from a preference study: make table2 STUDY=DIR
	@test -n "$(STUDY)" || { echo "make table2: set STUDY=DIR (made by spadelab study create)"; exit 2; }
	$(VENV)/bin/spadelab study report $(STUDY)

.PHONY: studio table2

# A single-node Slurm cluster with accounting on this machine, to try launcher=slurm (root; the
# Debian packages are installed when missing; state in SLURM_LOCAL_DIR). For example:
#   make slurm-up && make table4 LAUNCHER=slurm SWEEP_ARGS='trainer.accelerator=cpu
#     hydra.launcher.partition=cpu hydra.launcher.cpus_per_task=1' && make slurm-down
SLURM_LOCAL_DIR ?= /tmp/spadelab-slurm
export SLURM_LOCAL_DIR
# While it is up, the Slurm commands of make's recipes (sbatch, sacct via submitit) use it.
ifneq ($(wildcard $(SLURM_LOCAL_DIR)/run/slurmctld.pid),)
export SLURM_CONF ?= $(SLURM_LOCAL_DIR)/etc/slurm.conf
endif

slurm-up: ## start a one-node Slurm cluster with accounting here (root; installs the packages)
	scripts/slurm-local.sh up

slurm-down: ## stop the daemons slurm-up started (by PID; state stays in SLURM_LOCAL_DIR)
	scripts/slurm-local.sh down

.PHONY: slurm-up slurm-down
