"""Builds the C core (quicish.native._core) with cffi; everything else is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["quicish/native/build_core.py:ffibuilder"])
