# hybrid_vla_ros developer entry points. Every target creates and fills .venv when needed.
#   make test    lint + the test suite (what CI runs)
#   make lint    ruff only
#   make venv    just the virtualenv (no-op when up to date)
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

.PHONY: venv test lint test-all clean-venv

venv: $(STAMP)

# pip prints one warning per package for this machine's optional local indexes; drop them.
$(STAMP): requirements.txt requirements-dev.txt setup.py package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing pinned requirements into $(VENV) (first run takes a few minutes)"
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt 2>&1 | { grep -v 'is ignored' || true; }
	$(PY) -m pip install -q --no-deps -e . 2>&1 | { grep -v 'is ignored' || true; }
	@touch $@

lint: $(STAMP)
	$(VENV)/bin/ruff check hybrid_vla_ros test setup.py

test: lint
	$(PY) -m pytest -q test

# Includes the slow end-to-end tests (marked `slow`).
test-all: lint
	$(PY) -m pytest -q -m "slow or not slow" test

clean-venv:
	rm -rf $(VENV)
