"""Package discovery that cannot drift: every package under ``glow_lightning/`` is found, and the
top-level ``callbacks/`` and ``configs/`` folders ship as ``glow_lightning.callbacks`` and
``glow_lightning.configs`` with their subpackages. Everything else is in ``pyproject.toml``."""

from setuptools import find_namespace_packages, find_packages, setup

MAPPED = {"glow_lightning.callbacks": "callbacks", "glow_lightning.configs": "configs"}

packages = find_packages(include=["glow_lightning", "glow_lightning.*"])
for name, folder in MAPPED.items():
    subfolders = find_namespace_packages(folder, exclude=["*__pycache__*"])  # YAML folders too
    packages += [name, *(f"{name}.{sub}" for sub in subfolders)]

setup(packages=packages, package_dir=MAPPED)
