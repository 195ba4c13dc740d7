"""prism-tf: noise-resistant deep metric learning (PRISM) for Keras 3."""

import re
from pathlib import Path

from setuptools import find_packages, setup

version = re.search(r'__version__ = "([^"]+)"',
                    Path("prism_tf/__init__.py").read_text()).group(1)

setup(
    name="prism-tf",
    version=version,
    description="PRISM: noise-resistant deep metric learning for TensorFlow/Keras",
    long_description=Path("README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["prism_tf", "prism_tf.*"]),
    python_requires=">=3.10,<3.14",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.0",
        "tensorflow-datasets>=4.9",
        "absl-py>=2.1",
        "ml-collections>=0.1.1",
        "tensorboard>=2.16",
        "numpy>=1.26",
    ],
    extras_require={"test": ["pytest>=8"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
