"""cffi builder for the quicish C core (range set and reassembly buffer).

setuptools uses the module-level ``ffibuilder`` (``cffi_modules``). Run directly
to build in place next to this file:

    python quicish/native/build_core.py                     # _core*.so
    python quicish/native/build_core.py --inplace-sanitize  # _core_asan*.so (AddressSanitizer)

``QUICISH_SANITIZE=1`` in the environment also selects the sanitizer build when run
directly; it never affects the setuptools build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from cffi import FFI  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent
MODULE = "quicish.native._core"
ASAN_MODULE = "quicish.native._core_asan"
SOURCES = ("rangeset.c", "reassembly.c")

CDEF = """
typedef struct { uint64_t *b; size_t len; char *out; ...; } qr_rangeset;
typedef struct {
    uint64_t read_offset;
    uint64_t highest_offset;
    uint64_t max_offset;
    uint64_t final_size;
    int has_final;
    uint64_t readable;
    uint64_t buffered;
    size_t nsegs;
    ...;
} qr_reasm;

qr_rangeset *qr_rs_new(size_t max_ranges);
void qr_rs_free(qr_rangeset *rs);
int qr_rs_add(qr_rangeset *rs, uint64_t start, uint64_t stop);
int qr_rs_subtract(qr_rangeset *rs, uint64_t start, uint64_t stop);
bool qr_rs_contains(qr_rangeset *rs, uint64_t value);
void qr_rs_drop_below(qr_rangeset *rs, uint64_t value);
size_t qr_rs_len(qr_rangeset *rs);
uint64_t qr_rs_lo(qr_rangeset *rs);
uint64_t qr_rs_hi(qr_rangeset *rs);
int qr_rs_add_packet(qr_rangeset *rs, uint64_t pn);
int64_t qr_rs_ack_frame(qr_rangeset *rs, uint64_t delay, size_t max_ranges);
int64_t qr_rs_ack_frame_ecn(qr_rangeset *rs, uint64_t delay, size_t max_ranges,
                            uint64_t ect0, uint64_t ect1, uint64_t ce);
int qr_rs_reserve_out(qr_rangeset *rs);

qr_reasm *qr_ra_new(uint64_t max_offset);
void qr_ra_free(qr_reasm *ra);
int64_t qr_ra_insert(qr_reasm *ra, uint64_t offset, const char *data, size_t len, int fin);
const char *qr_ra_take(qr_reasm *ra, uint64_t n);
const char *qr_ra_take_all(qr_reasm *ra);
uint64_t qr_ra_readable(qr_reasm *ra);
size_t qr_ra_memory(qr_reasm *ra);
"""

# Inserted by cffi after its own macros and before the call wrappers it generates, so the
# redefinitions below apply to the wrappers only (rangeset.c / reassembly.c are compiled
# separately). Each generated wrapper brackets the C call with
#     Py_BEGIN_ALLOW_THREADS; _cffi_restore_errno(); call; _cffi_save_errno();
#     Py_END_ALLOW_THREADS
# i.e. a GIL release and re-acquire plus two errno copies through thread-local storage.
# Every function here is short, never blocks, never reads or sets errno and never calls
# back into Python, so all of that buys nothing; it was ~40% of the cost of a call
# (raw call 143 -> ~89 ns measured). Holding the GIL also means two Python threads can
# no longer run C code on the same object at the same time. Any other cffi module is
# unaffected: this only changes how this module's wrappers are compiled.
PREAMBLE = """
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void)0)
#define _cffi_save_errno() ((void)0)
#include "core.h"
"""

SANITIZE_FLAGS = ["-fsanitize=address", "-fno-omit-frame-pointer", "-g", "-O1"]


def make_builder(module: str = MODULE, sanitize: bool = False, absolute: bool = False) -> FFI:
    """An FFI builder for ``module``; source paths relative to the working directory by default
    (setuptools builds from the project root and wants relative paths)."""
    base = HERE if absolute else Path(os.path.relpath(HERE))
    compile_args: list[str] = []
    link_args: list[str] = []
    if sys.platform != "win32":
        compile_args = ["-std=c99", "-O2"]
    if sanitize:
        compile_args = ["-std=c99", *SANITIZE_FLAGS]
        link_args = ["-fsanitize=address"]
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        module,
        PREAMBLE,
        sources=[(base / name).as_posix() for name in SOURCES],
        include_dirs=[base.as_posix()],
        depends=[(base / "core.h").as_posix()],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        # The limited API (cffi's default) made each call ~1.7x slower here (measured),
        # and calls are what this core is made of; the module is per-Python-version.
        py_limited_api=False,
        define_macros=[("_CFFI_NO_LIMITED_API", None)],
    )
    return ffi


def build_inplace(sanitize: bool = False, verbose: bool = False) -> Path:
    """Compile in a temporary directory and copy the extension next to this file.

    Other builds of the same module (other suffixes, e.g. an old ``.abi3.so``) are
    removed so that a stale one can never shadow the new one.
    """
    module = ASAN_MODULE if sanitize else MODULE
    leaf = module.rsplit(".", 1)[1]
    ffi = make_builder(module, sanitize=sanitize, absolute=True)
    with tempfile.TemporaryDirectory(prefix="quicish-build-") as tmp:
        built = Path(ffi.compile(tmpdir=tmp, verbose=verbose))
        if not built.is_absolute():
            built = Path(tmp) / built
        dest = HERE / built.name
        for suffix in EXTENSION_SUFFIXES:
            stale = HERE / f"{leaf}{suffix}"
            if stale != dest and stale.exists():
                stale.unlink()
        # Copy then rename: never rewrite a file that a running process has mapped.
        partial = dest.with_name(dest.name + ".partial")
        shutil.copyfile(built, partial)
        os.replace(partial, dest)
    return dest


ffibuilder = make_builder()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--inplace-sanitize",
        action="store_true",
        help="build the AddressSanitizer variant quicish.native._core_asan",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    sanitize = args.inplace_sanitize or os.environ.get("QUICISH_SANITIZE", "") not in ("", "0")
    dest = build_inplace(sanitize=sanitize, verbose=args.verbose)
    print(f"built {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
