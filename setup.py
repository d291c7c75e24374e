"""Packages: every ``derive.*`` folder, and the top-level ``templates/`` as ``derive.templates``."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["derive", "derive.*"]), "derive.templates"])
