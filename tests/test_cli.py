"""The commands as a user types them: a packaged config by its name, a
user's own config file outside any checkout, one-line errors."""

import os
import subprocess
import sys
import textwrap

import pytest

from pipelines import cli

QUIET = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _train_from(folder, *flags):
    """`prism_tf.pipelines.train` (the installed name) run from `folder`, not
    from the checkout."""
    return subprocess.run([sys.executable, "-m", "prism_tf.pipelines.train", *flags],
                          cwd=folder, env=QUIET, capture_output=True, text=True, timeout=300)


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("flags", [
    ["--config=noise_benchmark:synthetic"], ["--config", "noise_benchmark:synthetic"]])
def test_a_packaged_config_is_found_by_name_from_any_folder(tmp_path, flags):
    # The packaged config loads, takes the override, and the run's own check
    # refuses it: the error proves the file was found and read.
    result = _train_from(tmp_path, *flags, f"--workdir={tmp_path / 'w'}",
                         "--config.train.steps=0")
    assert _error_line(result) == (
        "error: config.train.steps = 0: expected a positive number of steps")
    assert not (tmp_path / "w").exists()


def test_an_unknown_config_name_lists_the_packaged_ones(tmp_path):
    result = _train_from(tmp_path, "--config=defualt", f"--workdir={tmp_path / 'w'}")
    assert _error_line(result) == (
        "error: bad flag or config: --config=defualt: no such file, and no packaged config "
        f"'defualt' (packaged: {', '.join(cli.packaged_config_names())})")


def test_a_users_config_outside_the_checkout_builds_on_the_packaged_base(tmp_path):
    (tmp_path / "my_config.py").write_text(textwrap.dedent("""
        from prism_tf.configs.base import base_config

        def get_config():
            config = base_config()
            config.train.steps = 0   # what the run's check refuses, so nothing trains
            return config
        """))
    result = _train_from(tmp_path, "--config=my_config.py", f"--workdir={tmp_path / 'w'}")
    assert _error_line(result) == (
        "error: config.train.steps = 0: expected a positive number of steps")


def test_every_packaged_name_is_a_config_file():
    names = cli.packaged_config_names()
    assert {"default", "own_data", "noise_benchmark", "fashion_mnist"} <= set(names)
    assert "base" not in names and "paper" not in names   # helpers, not experiments
    for name in names:
        assert cli.config_file(name) == str(cli.PACKAGED_CONFIGS / f"{name}.py")
