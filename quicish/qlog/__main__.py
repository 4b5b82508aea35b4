"""``python -m quicish.qlog summary|plot|validate FILE``: the qlog tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .analysis import analyze
from .reader import QlogFormatError, read_qlog
from .summary import format_summary
from .validate import check_packet_numbers, validate_file


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quicish.qlog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_summary = sub.add_parser("summary", help="print a one-screen summary of a trace")
    p_summary.add_argument("file")
    p_plot = sub.add_parser("plot", help="draw data sent/acked, cwnd and RTT (needs matplotlib)")
    p_plot.add_argument("file")
    p_plot.add_argument("-o", "--output", help="image file (default: FILE with .png)")
    p_plot.add_argument("--title")
    p_valid = sub.add_parser("validate", help="check JSON-SEQ framing and the draft's fields")
    p_valid.add_argument("files", nargs="+")
    args = parser.parse_args(argv)

    if args.command == "validate":
        status = 0
        for name in args.files:
            problems = validate_file(name)
            if not problems:
                problems = check_packet_numbers(read_qlog(name))
            for problem in problems:
                print(f"{name}: {problem}")
            print(f"{name}: {'valid' if not problems else f'{len(problems)} problem(s)'}")
            status |= bool(problems)
        return status
    try:
        trace = read_qlog(args.file)
    except (OSError, QlogFormatError) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    analysis = analyze(trace)
    if args.command == "summary":
        print(format_summary(analysis))
        return 0
    from .plot import PlotUnavailable, plot_analysis

    out = args.output or (args.file.rsplit(".", 1)[0] + ".png")
    try:
        plot_analysis(analysis, out, args.title)
    except PlotUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
