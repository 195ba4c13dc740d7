"""prism-tf: noise-resistant deep metric learning (PRISM) for Keras 3.

The checkout keeps the design card's layout (`prism_tf/`, `pipelines/`,
`configs/` side by side); the wheel installs the pipelines and configs
inside the package, as `prism_tf.pipelines` and `prism_tf.configs`, so that
no generic top-level name lands in site-packages, and installs one command
per pipeline.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"',
                    Path("prism_tf/__init__.py").read_text()).group(1)

COMMANDS = {"train": "train", "evaluate": "evaluate", "export": "export",
            "find-noisy-labels": "find_noisy_labels", "serve-request": "serve_request",
            "index": "index"}

setup(
    name="prism-tf",
    version=version,
    description="PRISM: noise-resistant deep metric learning for TensorFlow/Keras",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    packages=(find_packages(include=["prism_tf", "prism_tf.*"])
              + ["prism_tf.pipelines", "prism_tf.pipelines.benchmarks", "prism_tf.configs"]),
    package_dir={"prism_tf.pipelines": "pipelines", "prism_tf.configs": "configs"},
    entry_points={"console_scripts": [
        f"prism-tf-{command} = prism_tf.pipelines.{module}:run"
        for command, module in COMMANDS.items()]},
    python_requires=">=3.10,<3.14",
    install_requires=[
        # The primary stack is TF >= 2.16 with Keras 3 (what this resolves to);
        # 2.15 stays allowed for the `legacy` extra.
        "tensorflow>=2.15",
        "tensorflow-datasets>=4.9",
        "absl-py>=2.1",
        "ml-collections>=0.1.1",
        "tensorboard>=2.15",
        "numpy>=1.26",
        # PredictRequest / PredictionLog protos: warm-up records and the client.
        "tensorflow-serving-api>=2.15.1",
        # Captions on the finder's picture and TensorBoard's image grids.
        "pillow>=9",
    ],
    extras_require={
        # pytest-xdist: `make test` spreads the tests over the CPU cores;
        # playwright drives the system's Chromium (never its own download)
        # through the review page as a person's browser opens it.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "build>=1.2", "twine>=5", "playwright>=1.40"],
        "faiss": ["faiss-cpu>=1.7"],   # optional exact kNN backend for evaluation
        # the noisy-label finder's comparison (pipelines/benchmarks/label_issues.py)
        "cleanlab": ["cleanlab>=2.6"],
        # Keras 2 and TensorFlow Addons' losses; needs Python <= 3.11.
        # tensorflow-metadata 1.16+ needs protobuf 5, which TF 2.15 refuses.
        "legacy": ["tensorflow>=2.15,<2.16", "tensorflow-addons>=0.23,<0.24",
                   "tensorflow-metadata<1.16"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
