"""Command line of the interop matrix.

python interop/run.py --all --output interop/RESULTS.md     # make interop
python interop/run.py --fast                                 # the make-test subset
python interop/run.py --scenario transfer --pair quicish-aioquic
python interop/run.py --sanity --scenario handshake          # aioquic vs aioquic self-check
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interop.evidence import FAILED, Result
from interop.harness import run_matrix
from interop.peers import MATRIX_PAIRS, SANITY_PAIR, Pair, pair_by_label
from interop.report import render
from interop.scenarios import FAST, Scenario, build


def select(
    names: list[str] | None, pair_labels: list[str] | None, fast: bool, sanity: bool = False
) -> tuple[list[Scenario], list[Pair]]:
    """Scenarios and pairs for a run (defaults: all, or the fast subset quicish-quicish)."""
    table = build(fast=fast)
    if names:
        unknown = [n for n in names if n not in table]
        if unknown:
            raise SystemExit(
                f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(table)}"
            )
        scenarios = [table[n] for n in names]
    else:
        scenarios = [table[n] for n in FAST] if fast else list(table.values())
    if pair_labels:
        pairs = [pair_by_label(label) for label in pair_labels]
    elif sanity:
        pairs = [SANITY_PAIR]
    elif fast:
        pairs = [MATRIX_PAIRS[0]]
    else:
        pairs = list(MATRIX_PAIRS)
    return scenarios, pairs


def run_fast(workdir: Path | None = None) -> list[Result]:
    """The ``make test`` subset, quicish to quicish (Python API for tests)."""
    scenarios, pairs = select(None, None, fast=True)
    root = workdir or Path(tempfile.mkdtemp(prefix="quicish-interop-"))
    try:
        return run_matrix(scenarios, pairs, root)
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interop", description="quicish interop matrix")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--all", action="store_true", help="every scenario, every pair (default)")
    mode.add_argument(
        "--fast",
        action="store_true",
        help="handshake, transfer, transferloss, handshakeloss, multiplexing, "
        "rebind-port; quicish-quicish; smaller sizes",
    )
    parser.add_argument("--scenario", action="append", help="run only these (repeatable)")
    parser.add_argument(
        "--pair",
        action="append",
        help="server-client label: quicish-quicish, quicish-aioquic, "
        "aioquic-quicish, aioquic-aioquic (repeatable)",
    )
    parser.add_argument(
        "--sanity",
        action="store_true",
        help="aioquic server and client only: checks the harness itself",
    )
    parser.add_argument("--output", help="write the markdown matrix here")
    parser.add_argument("--workdir", help="keep logs, key logs and downloads here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any cell failed")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so each cell's finally stops its server, relay and taps
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scenarios, pairs = select(args.scenario, args.pair, args.fast, args.sanity)
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="quicish-interop-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    command = "python interop/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(
        f"{len(scenarios)} scenario(s) x {len(pairs)} pair(s); work dir {workdir}", file=sys.stderr
    )

    done: list[Result] = []
    started = time.monotonic()

    def progress(r: Result) -> None:
        done.append(r)
        if args.output:  # keep the file current: a killed run still leaves its cells
            partial = render(done, scenarios, pairs, command.strip(), time.monotonic() - started)
            Path(args.output).write_text(partial)
        print(
            f"{r.scenario:20} {r.pair:16} {r.seconds:6.1f} s  {r.cell()}",
            file=sys.stderr,
            flush=True,
        )

    try:
        results = run_matrix(scenarios, pairs, workdir, progress)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    text = render(results, scenarios, pairs, command.strip(), elapsed)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    failed = sum(1 for r in results if r.status == FAILED)
    return 1 if (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
