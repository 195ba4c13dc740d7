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

# The legacy stack runs what Keras 2 and TF 2.15 can break: every library
# test and doctest, the exports in TF 2.15's runtime, TFA's losses, the
# extension examples, tf.distribute (MirroredStrategy and the multi-worker
# stop and resume), and one pipeline chain: a run, killed and resumed,
# evaluated, exported, fine-tuned, its export scored by the finder. The
# pipelines' own Python (config and data checks, the finder's files, the
# review page, the benchmarks, the CLI, the README's recipes) is the same on
# both stacks and runs on the primary one only: on 2 cores the legacy suite
# took 15 minutes alone, and now 15 minutes with the wheel check beside it.
LEGACY_TESTS = prism_tf pipelines tests/test_data_noise.py tests/test_data_pipeline.py \
	tests/test_data_sources.py tests/test_encoders.py tests/test_evaluation.py \
	tests/test_export.py tests/test_extending.py tests/test_losses.py \
	tests/test_memory_bank.py tests/test_model.py tests/test_monitoring.py \
	tests/test_proxy_losses.py tests/test_selector.py tests/test_tfa_parity.py \
	tests/test_distributed.py \
	tests/test_readme.py::test_the_use_snippets_run_one_after_the_other \
	tests/test_label_issues.py::test_the_finder_scores_an_export_as_it_scores_the_checkpoint \
	$(addprefix tests/test_train_pipeline.py::,test_a_run_writes_config_data_checkpoints_metrics_and_tensorboard \
	test_killed_run_resumes_to_the_same_result \
	test_evaluate_checkpoint_and_exported_model_reproduce_the_run \
	test_fine_tuning_starts_from_a_runs_checkpoint_or_export \
	test_a_proxysim_run_checkpoints_its_proxies_and_their_optimizer)

test-legacy: .venv-legacy/.installed
	.venv-legacy/bin/python $(PYTEST) $(LEGACY_TESTS)

check-wheel: .venv/.installed
	bash .ci/check-wheel
