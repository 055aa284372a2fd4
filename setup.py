"""tfrs_seqcompress: long user-history compression (IAT, HiSAC) for TensorFlow Recommenders.

Install for development with the project's lock (see README): ``bash scripts/setup.sh``.
``install_requires`` names the direct dependencies loosely; ``requirements.lock`` pins the
whole TFX 1.16 stack that is known to work together.
"""
from setuptools import find_packages, setup

setup(
    name="tfrs_seqcompress",
    version="0.1.0",
    description="Long user-history compression (IAT, HiSAC) for TensorFlow Recommenders ranking models.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["tfrs_seqcompress", "tfrs_seqcompress.*", "pipelines", "pipelines.*"]),
    install_requires=[
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "tensorflow-recommenders>=0.7.7,<0.8",
        "tensorflow-serving-api>=2.16,<2.17",
        "numpy>=1.23,<2",
        "matplotlib>=3.8",
    ],
    extras_require={
        "pipeline": ["tfx==1.16.0", "apache-beam[gcp]==2.59.0"],
        "test": ["pytest"],
    },
)
