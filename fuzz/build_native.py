"""Build the C core with clang's SanitizerCoverage for the fuzzer (libFuzzer's
``-fsanitize=fuzzer-no-link``), as ``quicish.native._core_fuzz`` next to the regular build.

``python -m fuzz.run`` selects it with ``QUICISH_NATIVE_MODULE`` when it exists, so the
fuzzer sees branch coverage and comparisons inside rangeset.c, reassembly.c, aead.c and
the py_*.c type files too. Without clang nothing is built and only the Python code is instrumented.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from quicish.native import build_core

__all__ = ["COVERAGE", "build", "build_core", "built", "clang"]

MODULE = "quicish.native._core_fuzz"
# What -fsanitize=fuzzer-no-link turns on, less stack-depth (its __sancov_lowest_stack is not
# in the libFuzzer that atheris wheels carry).
COVERAGE = "-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp"
FLAGS = ["-std=c99", "-O1", "-g", "-fno-omit-frame-pointer", COVERAGE]


def clang() -> str | None:
    """The clang to build with (``$CLANG`` or the first on PATH), or None."""
    return os.environ.get("CLANG") or shutil.which("clang")


def built() -> Path | None:
    """The instrumented extension, if it was built."""
    found = sorted(build_core.HERE.glob("_core_fuzz.*.so"))
    return found[0] if found else None


def build(cc: str) -> Path:
    ffi = build_core.make_builder(MODULE, absolute=True)
    module, source, source_extension, kwds = ffi._assigned_source
    kwds = dict(kwds, extra_compile_args=FLAGS, extra_link_args=[])
    ffi._assigned_source = (module, source, source_extension, kwds)  # same sources, clang flags
    env = {"CC": cc, "LDSHARED": f"{cc} -shared"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with tempfile.TemporaryDirectory(prefix="quicish-fuzz-build-") as tmp:
            out = Path(ffi.compile(tmpdir=tmp))
            if not out.is_absolute():
                out = Path(tmp) / out
            dest = build_core.HERE / out.name
            shutil.copyfile(out, dest.with_name(dest.name + ".partial"))
            os.replace(dest.with_name(dest.name + ".partial"), dest)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return dest


def main() -> int:
    cc = clang()
    if cc is None:
        print("fuzz: no clang: the C core is not instrumented (Python coverage only)")
        return 0
    print(f"fuzz: built {build(cc)} with {cc} {' '.join(FLAGS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
