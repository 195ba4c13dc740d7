# The two newcomer commands: `make demo` (set up, run the main job) and
# `make test` (set up, run the tests). Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pipelines.demo

test: setup
	$(PY) -m pytest -q
