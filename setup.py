"""Packages: every ``derive.*`` folder, and the top-level ``templates/`` as ``derive.templates``."""

from setuptools import find_namespace_packages, setup

packages = find_namespace_packages(include=["derive", "derive.*"], exclude=["*.__pycache__"])
setup(packages=[*packages, "derive.templates"])
