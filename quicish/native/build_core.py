"""cffi builder for the quicish C core (range set, reassembly buffer, AES-GCM packet cipher).

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
SOURCES = (
    "rangeset.c",
    "reassembly.c",
    "aead.c",
    "pytypes.c",
    "py_rangeset.c",
    "py_reassembly.c",
    "py_cipher.c",
    "burst.c",
    "py_qlog.c",
    "py_qlog_tap.c",
    "py_qlog_bulk.c",
    "py_qlog_spool.c",
    "py_qlog_packet.c",
    "py_udp.c",
)
HEADERS = ("core.h", "aead.h", "burst.h", "pytypes.h")

# How the types reach Python. cffi builds and loads the module, but RangeSet,
# ReassemblyBuffer and PacketCipher are CPython extension types written in C (py_rangeset.c,
# py_reassembly.c, py_cipher.c, sharing pytypes.h / pytypes.c: the only sources that include
# Python.h): a method call is then one C
# call with the arguments read through the C API (20-50 ns), instead of a Python wrapper
# method plus a cffi call (90-220 ns, plus 130-185 ns of ffi.from_buffer for memoryviews),
# which cost more than the C work itself. cffi exposes a single function, qr_export_types, which
# quicish.native.accelerated calls once at import: it creates the three types and sets
# them as attributes of this very module. Using the C API inside a cffi-called function
# needs the GIL: qr_export_types takes it itself with PyGILState_Ensure (cffi's wrapper
# releases it around the call), so no change to cffi's generated code is needed.
#
# PacketCipher's crypto (aead.c, AES-GCM packet protection) calls the system libcrypto,
# which it dlopens at first use: building needs no OpenSSL headers and links nothing but
# libdl (part of libc since glibc 2.34; naming it is harmless there).
#
# qr_pn_decode (aead.c, RFC 9000 A.3 for the C open path) is declared too, so the tests can
# compare it with the Python definition directly.
CDEF = """
const char *qr_export_types(const char *module_name, const char *type_module,
                            const char *pure_module);
int64_t qr_pn_decode(int64_t largest_pn, uint32_t truncated, unsigned pn_len);
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
    libraries = ["dl", "pthread"] if sys.platform.startswith("linux") else []
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        module,
        CDEF,
        sources=[(base / name).as_posix() for name in SOURCES],
        include_dirs=[base.as_posix()],
        depends=[(base / name).as_posix() for name in HEADERS],
        libraries=libraries,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        # the py_*.c files use the full C API (e.g. PyTuple_SET_ITEM, PyBytes_AS_STRING), so the
        # module is built per Python version, not for the limited API (cffi's default).
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
