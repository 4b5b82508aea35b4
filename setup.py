"""Builds the C core (quicish.native._core) with cffi; everything else is in pyproject.toml.

Without a working C compiler the install still succeeds: the C core is left out with one
warning and quicish runs on its pure-Python twin (``quicish.ACCELERATED`` is False).
``QUICISH_REQUIRE_C=1`` turns that fallback into an error (the Makefile sets it).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

_OPTIONAL_FAILURES: tuple[type[BaseException], ...] = (OSError,)
try:  # setuptools' vendored distutils names the compiler errors
    from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

    _OPTIONAL_FAILURES += (CCompilerError, CompileError, ExecError, LinkError, PlatformError)
except ImportError:  # pragma: no cover - very old setuptools
    pass

WARNING = (
    "WARNING: quicish's C core could not be built ({reason}); installing without it. "
    "quicish will run on its pure-Python twin (slower). Install a C compiler and the "
    "Python headers, then reinstall, to get the C core."
)


class OptionalBuildExt(build_ext):
    """``build_ext`` that treats the C core as optional unless QUICISH_REQUIRE_C is set."""

    def run(self) -> None:
        try:
            super().run()
        except _OPTIONAL_FAILURES as exc:
            self._give_up(exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except _OPTIONAL_FAILURES as exc:
            self._give_up(exc)

    @staticmethod
    def _give_up(exc: BaseException) -> None:
        if os.environ.get("QUICISH_REQUIRE_C", "") not in ("", "0"):
            raise exc
        print(WARNING.format(reason=f"{type(exc).__name__} from the C compiler"), file=sys.stderr)


setup(
    cffi_modules=["quicish/native/build_core.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
