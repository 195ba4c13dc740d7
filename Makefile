# The two newcomer commands: `make train` (set up, run the main job: the
# default config on the built-in synthetic set, into runs/default) and
# `make test` (set up, run the tests). Both create .venv on first use.
# `make test-legacy` runs the tests on TF 2.15 + Keras 2 + TFA in .venv-legacy;
# `make check-wheel` builds the sdist and wheel and runs the commands from a
# fresh environment outside the checkout (.ci/check-wheel).
PYTHON ?= python3

.PHONY: train test test-legacy check-wheel

%/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $*
	$*/bin/python -m pip install --quiet --upgrade pip
	$*/bin/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

.venv/.installed: EXTRAS = test,faiss,cleanlab
.venv-legacy/.installed: EXTRAS = legacy,test

train: .venv/.installed
	TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m pipelines.train \
		--config=configs/default.py --workdir=runs/default

# One test process per CPU core (pytest-xdist); each test file stays on one
# process, so a file's shared fixtures (a trained run, an export) are built
# once. `make test PYTEST_WORKERS=0` runs them in this process.
PYTEST_WORKERS ?= auto
PYTEST = -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: .venv/.installed
	.venv/bin/python $(PYTEST)

# The legacy stack runs every library and pipeline test; the benchmark
# pipelines' tests and the README's serving and search recipes (the same
# exports, tested there through test_export) run on the primary stack only,
# which keeps CI under its 30 minutes.
LEGACY_SKIPS = --ignore=tests/test_benchmarks.py \
	--deselect tests/test_readme.py::test_the_serving_recipe_runs_as_written \
	--deselect tests/test_readme.py::test_the_search_recipe_runs_as_written

test-legacy: .venv-legacy/.installed
	.venv-legacy/bin/python $(PYTEST) $(LEGACY_SKIPS)

check-wheel: .venv/.installed
	bash .ci/check-wheel
