"""Run the fuzz targets with atheris for a bounded time each, one after the other.

    python -m fuzz.run                          # every target, 60 s each
    python -m fuzz.run --target endpoint --seconds 300
    python -m fuzz.run --write-seeds            # (re)write tests/corpus/<target>/seed-*.hex

Each target runs in a child process (libFuzzer owns the process and exits at the end).
Seeds are ``tests/corpus/<target>/*.hex`` plus inputs made from ``tests/corpus/wire``; the
growing working corpus lives in ``build/fuzz/<target>/corpus``. The child catches every
exception ``one_input`` lets through, keeps fuzzing, and writes the first input of each
distinct crash (exception type and place) to ``tests/corpus/<target>/crash-<sha1>.hex``,
where ``tests/test_fuzz_regressions.py`` replays it until it is fixed; a timeout, an
out-of-memory or a native crash ends the child, is saved the same way, and the target is
started again for the time left. Prints the executions run and the crashes per target and
exits 1 if any crash was found.

The C core is instrumented too when clang is available (``fuzz/build_native.py`` builds
``quicish.native._core_fuzz`` with SanitizerCoverage); otherwise only Python is. ``--asan``
does not fuzz: it replays each target's corpus (seeds and the working corpus the fuzzer
grew) with the AddressSanitizer build of the C core (``quicish.native._core_asan``, as
``make sanitize``); a memory error aborts the child and the input being run is saved from
``build/fuzz/<target>/current``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from types import ModuleType

from .common import CORPUS, ROOT, TARGETS, dump_hex, load_hex, short_hash

WORK = ROOT / "build" / "fuzz"
MAX_LEN = {"endpoint": 4096, "initial": 4096, "tls": 2048}
NATIVE_MODULE = "quicish.native._core_fuzz"
ASAN_MODULE = "quicish.native._core_asan"


# ---- the child: one target under libFuzzer ------------------------------------------------------
def _signature(exc: BaseException) -> str:
    """Exception type and the innermost quicish (or fuzz) frame: one crash, many inputs."""
    frames = traceback.extract_tb(exc.__traceback__)
    place = "?"
    for frame in frames:
        if "/quicish/" in frame.filename or "/fuzz/" in frame.filename:
            place = f"{Path(frame.filename).name}:{frame.lineno}"
    return f"{type(exc).__name__} at {place}"


def save_crash(target: str, data: bytes, why: list[str]) -> Path:
    """Write a crashing input to the target's corpus directory (a regression test)."""
    path = CORPUS / target / f"crash-{short_hash(data)}.hex"
    if not path.exists():
        path.write_text(dump_hex(data, [f"crash found by fuzzing ({target})", *why]))
    return path


def _run_one(target: str, one_input: Callable[[bytes], None], data: bytes, seen: set[str]) -> None:
    """Run one input; report and save the first input of each distinct crash."""
    try:
        one_input(data)
    except Exception as exc:
        sig = _signature(exc)
        if sig in seen:
            return
        seen.add(sig)
        text = "".join(traceback.format_exception(exc))
        first = (str(exc).splitlines() or [""])[0][:200]
        path = save_crash(target, data, [sig, f"{type(exc).__name__}: {first}"])
        print(f"fuzz: CRASH {sig} -> {path.relative_to(ROOT)}\n{text}", file=sys.stderr,
              flush=True)  # fmt: skip


def _child_replay(target_name: str, work: Path) -> None:
    """Every corpus input of a target once (under AddressSanitizer: no libFuzzer)."""
    import quicish

    print(f"fuzz: {target_name}: C core {os.environ.get('QUICISH_NATIVE_MODULE')}, "
          f"accelerated={quicish.ACCELERATED}", file=sys.stderr, flush=True)  # fmt: skip
    one_input = _target(target_name).one_input
    current = work / target_name / "current"  # an ASan abort leaves nothing else behind
    seen: set[str] = set()
    count = 0
    for sub in ("seeds", "corpus"):
        for path in sorted((work / target_name / sub).iterdir()):
            data = path.read_bytes()
            current.write_bytes(data)
            _run_one(target_name, one_input, data, seen)
            count += 1
    current.unlink()
    print(f"stat::number_of_executed_units: {count}", file=sys.stderr, flush=True)


def _child(target_name: str, seconds: int, work: Path) -> None:
    import atheris  # type: ignore[import-untyped]

    seen: set[str] = set()
    state: dict[str, Callable[[bytes], None]] = {}

    def first_call() -> Callable[[bytes], None]:
        # The instrumented C core needs libFuzzer's callbacks in the global symbol scope:
        # atheris loads its libFuzzer locally when fuzzing starts, so make it global now and
        # only then import quicish (which loads the C core).
        core = import_module("atheris.core_with_libfuzzer")
        ctypes.CDLL(core.__file__, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)
        with atheris.instrument_imports(include=["quicish", "fuzz"]):
            module = import_module(f"fuzz.{target_name}")
        import quicish

        native = "pure-Python twin (no C core)"
        if quicish.ACCELERATED:
            native = import_module("quicish.native.accelerated").MODULE_NAME
        print(f"fuzz: {target_name}: C core {native}", file=sys.stderr, flush=True)
        return module.one_input  # type: ignore[no-any-return]

    def test_one_input(data: bytes) -> None:
        one_input = state.get("f")
        if one_input is None:
            one_input = state["f"] = first_call()
        _run_one(target_name, one_input, data, seen)

    corpus, seeds, crashes = (work / target_name / d for d in ("corpus", "seeds", "crashes"))
    args = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        "-timeout=25",
        "-rss_limit_mb=3072",
        f"-max_len={MAX_LEN.get(target_name, 1500)}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        "-len_control=0" if target_name in ("endpoint", "initial") else "-len_control=100",
        str(corpus),
        str(seeds),
    ]
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


# ---- the parent: seeds, children, report ---------------------------------------------------
def _target(name: str) -> ModuleType:
    return import_module(f"fuzz.{name}")


def write_seeds(names: list[str]) -> None:
    for name in names:
        directory = CORPUS / name
        directory.mkdir(parents=True, exist_ok=True)
        for stem, data in _target(name).seeds():
            (directory / f"{stem}.hex").write_text(dump_hex(data, [f"{name} seed: {stem}"]))
        print(f"fuzz: wrote the seeds of {name} to {directory.relative_to(ROOT)}")


def all_inputs(name: str) -> list[tuple[str, bytes]]:
    """Every corpus input of a target: its .hex files, then those made from the wire corpus."""
    out = [(p.stem, load_hex(p)[1]) for p in sorted((CORPUS / name).glob("*.hex"))]
    from_wire = getattr(_target(name), "from_wire", None)
    if from_wire is not None:
        out += list(from_wire())
    return out


def _prepare(name: str, work: Path) -> None:
    for sub in ("corpus", "seeds", "crashes"):
        (work / name / sub).mkdir(parents=True, exist_ok=True)
    seeds = work / name / "seeds"
    for old in seeds.iterdir():
        old.unlink()
    for stem, data in all_inputs(name):
        (seeds / stem).write_bytes(data)


def _native_env(asan: bool) -> tuple[dict[str, str], str]:
    """The environment of the children, and how the C core is instrumented."""
    from . import build_native

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if asan:
        core = build_native.build_core
        asan_built = sorted(core.HERE.glob("_core_asan.*.so"))
        sources = [core.HERE / s for s in (*core.SOURCES, *core.HEADERS)]
        if not asan_built or any(s.stat().st_mtime > asan_built[0].stat().st_mtime
                                 for s in sources):  # fmt: skip
            core.build_inplace(sanitize=True)
        libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                 text=True, check=True).stdout.strip()  # fmt: skip
        env.update(QUICISH_NATIVE_MODULE=ASAN_MODULE, QUICISH_FUZZ_ASAN="1", LD_PRELOAD=libasan,
                   ASAN_OPTIONS="detect_leaks=0")  # fmt: skip
        return env, "none: the corpora replayed once with the C core built with AddressSanitizer"
    if build_native.clang() is None:
        return env, "Python only (no clang: the C core runs uninstrumented)"
    built = build_native.built()
    core = build_native.build_core
    sources = [core.HERE / s for s in (*core.SOURCES, *core.HEADERS)]
    if built is None or any(s.stat().st_mtime > built.stat().st_mtime for s in sources):
        built = build_native.build(build_native.clang() or "clang")
    env["QUICISH_NATIVE_MODULE"] = NATIVE_MODULE
    return env, f"Python and the C core ({built.name}, {build_native.COVERAGE})"


_DONE = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_REASON = re.compile(r"ERROR: libFuzzer: ([^\n]+)")
_ASAN = re.compile(r"ERROR: AddressSanitizer: ([^\n]+)")


def run_target(name: str, seconds: int, work: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """Fuzz one target for ``seconds`` (or replay its corpus under ASan); (executions,
    crash descriptions)."""
    _prepare(name, work)
    executions = 0
    crashes: list[str] = []
    deadline = time.monotonic() + seconds
    log_path = work / name / "last.log"
    replay = bool(env.get("QUICISH_FUZZ_ASAN"))  # one pass over the corpus, no time limit
    while (left := int(deadline - time.monotonic())) >= 3 or replay:
        cmd = [sys.executable, "-m", "fuzz.run", "--child", name, "--seconds", str(left),
               "--work", str(work)]  # fmt: skip
        with open(log_path, "w") as log:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  check=False)  # fmt: skip
        text = log_path.read_text(errors="replace")
        executions += sum(int(n) for n in _DONE.findall(text))
        crashes += [line[len("fuzz: CRASH "):] for line in text.splitlines()
                    if line.startswith("fuzz: CRASH ")]  # fmt: skip
        for line in text.splitlines():
            if line.startswith(("fuzz: CRASH", "fuzz: " + name + ": C core")):
                print(line, flush=True)
        if proc.returncode == 0:
            break
        reason = _REASON.search(text) or _ASAN.search(text)
        artifact = _ARTIFACT.search(text)
        current = work / name / "current"
        if artifact is not None:
            data = Path(artifact.group(1)).read_bytes()
        elif replay and current.exists():
            data = current.read_bytes()
        else:
            print(text[-3000:])
            crashes.append(f"child exited with {proc.returncode}, no artifact")
            break
        why = reason.group(1).strip() if reason else f"exit {proc.returncode}"
        path = save_crash(name, data, [why])
        crashes.append(f"{why} -> {path.relative_to(ROOT)}")
        print(f"fuzz: CRASH {why} -> {path.relative_to(ROOT)}\n{text[-3000:]}", flush=True)
        if replay:
            break
    return executions, crashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", action="append", choices=[*TARGETS, "all"])
    parser.add_argument("--seconds", type=int,
                        default=int(os.environ.get("FUZZ_SECONDS", "60")))  # fmt: skip
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument(
        "--asan",
        action="store_true",
        help="replay the corpora with the C core built with AddressSanitizer",
    )
    parser.add_argument("--write-seeds", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        if os.environ.get("QUICISH_FUZZ_ASAN"):
            _child_replay(args.child, args.work)
        else:
            _child(args.child, args.seconds, args.work)
        return 0
    names = list(TARGETS) if not args.target or "all" in args.target else args.target
    if args.write_seeds:
        write_seeds(names)
        return 0
    env, coverage = _native_env(args.asan)
    print(f"fuzz: {len(names)} target(s), {args.seconds} s each; coverage: {coverage}")
    results = []
    for name in names:
        start = time.monotonic()
        executions, crashes = run_target(name, args.seconds, args.work, env)
        took = time.monotonic() - start
        results.append((name, executions, took, crashes))
        print(f"fuzz: {name}: {executions} executions in {took:.0f} s, "
              f"{len(crashes)} crash(es)", flush=True)  # fmt: skip
    print("\nfuzz: summary")
    for name, executions, took, crashes in results:
        print(f"  {name:<10} {executions:>10} executions  {took:>5.0f} s  {len(crashes)} crash(es)")
        for crash in crashes:
            print(f"      {crash}")
    return 1 if any(crashes for *_, crashes in results) else 0


if __name__ == "__main__":
    sys.exit(main())
