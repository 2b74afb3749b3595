# hybrid_vla_ros developer entry points. Every target creates and fills .venv when needed.
#   make test    lint + the test suite (what CI runs)
#   make lint    ruff + the import contract (.importlinter, docs/architecture.md)
#   make venv    just the virtualenv (no-op when up to date)
#   make demo    the simulated robot + the three ROS 2 nodes with the shipped default policy
#   make bench   benchmarks (bench-ros: camera -> command latency of the running graph;
#                bench-train: training-step samples/s)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# ROS 2 traffic never leaves this machine; a private domain keeps runs apart.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_LOCALHOST_ONLY := 1
export ROS_DOMAIN_ID ?= 61
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: venv test lint test-all clean-venv demo bench bench-model bench-ros bench-train train-default train-mt50

# The policy `make demo` and `make bench` run (the trained default ships in models/default),
# and the simulated suite of the demo (`make demo SUITE=mt50 CHECKPOINT=models/mt50`).
CHECKPOINT ?= models/default
SUITE ?= metaworld

venv: $(STAMP)

# pip prints one warning per package for this machine's optional local indexes; drop them.
INTERFACES := $(wildcard interfaces/hybrid_vla_interfaces/*.txt interfaces/hybrid_vla_interfaces/*.xml interfaces/hybrid_vla_interfaces/msg/*.msg interfaces/hybrid_vla_interfaces/action/*.action)

$(STAMP): requirements.txt requirements-dev.txt setup.py package.xml $(INTERFACES) scripts/build_interfaces.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned requirements into $(VENV) (first run takes a few minutes)"
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) -m pip install -q --no-deps -e . 2>&1 | { grep -v 'is ignored' || true; }
	@echo "building hybrid_vla_interfaces into $(VENV) (about 25 s)"
	VENV=$(VENV) bash scripts/build_interfaces.sh
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check hybrid_vla_ros test scripts setup.py
	$(VENV)/bin/lint-imports --no-cache

test: lint
	$(PY) -m pytest -q test

# Includes the slow end-to-end tests (marked `slow`).
test-all: lint
	$(PY) -m pytest -q -m "slow or not slow" test

clean-venv:
	rm -rf $(VENV)

# The simulated robot and the perception, instruction and policy nodes as separate processes
# with the shipped default policy on onnxruntime, driven through the topics as a user would:
# episodes across the suite, success rate and camera -> command latency (under 5 minutes).
demo: $(STAMP)
	@test -f $(CHECKPOINT)/config.yaml || { echo "make demo: $(CHECKPOINT) does not exist yet (the trained default policy ships with the training work); run make demo CHECKPOINT=path/to/checkpoint" >&2; exit 2; }
	@test -f $(CHECKPOINT)/onnx/manifest.json || $(VENV)/bin/hybrid-vla export --checkpoint $(CHECKPOINT)
	$(VENV)/bin/hybrid-vla demo --checkpoint $(CHECKPOINT) --suite $(SUITE)

# Benchmarks; results in bench/results/*.json, summarized in docs/benchmarks.md.
bench: bench-model bench-ros bench-train

# Latency p50/p90/p99 of each deployed part and of a control step, torch eager vs
# onnxruntime, 1 and 2 threads, batch 1.
bench-model: $(STAMP)
	$(VENV)/bin/hybrid-vla bench-model $(if $(wildcard $(CHECKPOINT)/config.yaml),--checkpoint $(CHECKPOINT),--config config/models/default.yaml) --out bench/results/model_latency.json

# End-to-end camera -> command latency p50/p99 at 20 Hz and missed control ticks, the three
# nodes and the simulated robot as separate processes (an untrained default-architecture
# model when models/default is absent: latency does not depend on the weights).
bench-ros: $(STAMP)
	$(VENV)/bin/hybrid-vla bench-ros $(if $(wildcard $(CHECKPOINT)/config.yaml),--checkpoint $(CHECKPOINT),--config config/models/default.yaml) --out bench/results/ros_latency.json

# Training-step samples/s of config/train/default.yaml, torch vs the package's dropout and
# multi-tensor vs fused AdamW, same weights and batches, the variants taking turns (about a
# minute with collection). Its batches come from two episodes per task collected once into bench/data.
BENCH_TRAIN_DATA ?= bench/data/suite
bench-train: $(STAMP)
	$(VENV)/bin/hybrid-vla collect --episodes 2 --seed 0 --out $(BENCH_TRAIN_DATA)
	$(VENV)/bin/hybrid-vla bench-train --config config/train/default.yaml --data $(BENCH_TRAIN_DATA) --out bench/results/train_step.json

# Reproduce the shipped default policy: collect, train, export, evaluate (about 85 minutes
# on a free 2-core machine). See scripts/train_default.sh and models/default/README.md.
train-default: $(STAMP)
	bash scripts/train_default.sh

# Reproduce the MT50 policy (models/mt50): collect all 50 Meta-World v3 tasks, train,
# export, evaluate by the published protocol. Longer than one session on 2 cores: run it
# again and every part continues where it stopped (docs/mt50.md has the times).
train-mt50: $(STAMP)
	bash scripts/train_mt50.sh
