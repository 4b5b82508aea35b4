"""Command line: ``python -m quicish.netem --listen H:P --upstream H:P [options]``.

Every link option applies to both directions, or to one with a ``--to-server-`` /
``--to-client-`` prefix (``--to-server-loss 5``); a prefixed option overrides the plain
one for its direction. The counters are printed as JSON on stdout at exit (``--duration``,
SIGTERM or SIGINT). ``--control`` is the child-process mode used by `quicish.netem.Netem`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError
from .config import Address, LinkConfig, RelaySettings
from .relay import Relay


def parse_address(text: str) -> Address:
    """``"127.0.0.1:4433"`` or ``"[::1]:4433"`` to ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def parse_pair(text: str) -> tuple[float, float]:
    """``"1,5"`` to ``(1.0, 5.0)``."""
    parts = text.split(",")
    try:
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected A,B (seconds), got {text!r}")


def parse_indices(text: str) -> tuple[int, ...]:
    """``"2,3,4"`` or ``"2-7,10"`` to a tuple of 1-based indices."""
    out: list[int] = []
    try:
        for part in text.split(","):
            first, dash, last = part.strip().partition("-")
            if dash:
                out.extend(range(int(first), int(last) + 1))
            else:
                out.append(int(first))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I,J,K or I-J, got {text!r}") from None
    return tuple(out)


# flag, LinkConfig field, parser, metavar, help
_LINK_OPTIONS: list[tuple[str, str, Callable[[str], Any], str, str]] = [
    ("delay", "delay_ms", float, "MS", "one-way delay"),
    ("jitter", "jitter_ms", float, "MS", "uniform +-jitter on the delay (never reorders)"),
    ("rate", "rate_mbit", float, "MBIT", "link rate (serialisation; packets queue)"),
    ("queue", "queue", int, "PACKETS", "drop-tail queue limit behind the rate (default 1000)"),
    ("loss", "loss_pct", float, "PCT", "packet loss, long-run percentage"),
    ("corrupt", "corrupt_pct", float, "PCT", "corrupt one byte after the first"),
    ("burst", "burst", int, "N", "loss/corruption events hit N consecutive packets"),
    ("duplicate", "duplicate_pct", float, "PCT", "send a packet twice"),
    ("reorder", "reorder_pct", float, "PCT", "hold a packet back behind later ones"),
    ("reorder-gap", "reorder_gap", int, "N", "packets that overtake a held one (default 2)"),
    ("reorder-hold", "reorder_hold_ms", float, "MS", "longest hold (default 50)"),
    ("drop-list", "drop_list", parse_indices, "I,J,K", "drop these 1-based packet indices"),
    ("blackhole", "blackhole", parse_pair, "ON_S,OFF_S", "link on ON_S s, then off OFF_S s"),
    ("mtu", "mtu", int, "BYTES", "drop datagrams with a UDP payload over BYTES"),
]
_PREFIXES = (("", "both"), ("to-server-", "to_server"), ("to-client-", "to_client"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m quicish.netem",
        description="UDP relay with network impairments (loopback only).",
    )
    parser.add_argument(
        "--listen",
        type=parse_address,
        default=("127.0.0.1", 0),
        metavar="HOST:PORT",
        help="where clients send (default 127.0.0.1:0)",
    )
    parser.add_argument(
        "--upstream", type=parse_address, metavar="HOST:PORT", help="the server to relay to"
    )
    parser.add_argument(
        "--rebind-port",
        type=parse_pair,
        metavar="FIRST_S,EVERY_S",
        help="new source port towards the server after FIRST_S, then every EVERY_S",
    )
    parser.add_argument(
        "--rebind-addr",
        action="store_true",
        help="with --rebind-port: also a new source address in 127.0.0.0/8",
    )
    parser.add_argument("--seed", type=int, help="random seed (default: random, reported)")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="forget a client after S idle seconds (default 300)",
    )
    parser.add_argument("--control", action="store_true", help=argparse.SUPPRESS)
    for flag_prefix, group_name in _PREFIXES:
        group = parser.add_argument_group(
            f"{group_name} link" if flag_prefix else "link options (both directions)",
            f"the options above, for one direction only ({flag_prefix}...)"
            if flag_prefix
            else None,
        )
        for flag, field, kind, metavar, help_text in _LINK_OPTIONS:
            group.add_argument(
                f"--{flag_prefix}{flag}",
                dest=f"{group_name}__{field}",
                type=kind,
                metavar=metavar,
                help=help_text if not flag_prefix else None,
            )
    return parser


def settings_from_args(args: argparse.Namespace) -> RelaySettings:
    links: dict[str, LinkConfig] = {}
    for _, group_name in _PREFIXES:
        values = {field: getattr(args, f"{group_name}__{field}") for _, field, *_ in _LINK_OPTIONS}
        links[group_name] = LinkConfig(**values)
    return RelaySettings(
        upstream=args.upstream,
        listen=args.listen,
        both=links["both"],
        to_server=links["to_server"],
        to_client=links["to_client"],
        rebind_port=args.rebind_port,
        rebind_addr=args.rebind_addr,
        seed=args.seed,
        idle_timeout=args.idle_timeout,
    ).validate()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.control:
        return _control()
    if args.upstream is None:
        parser.error("--upstream is required")
    try:
        relay = Relay(settings_from_args(args))
    except (ConfigError, OSError) as exc:
        parser.error(str(exc))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: relay.request_stop())
    relay.start()
    host, port = relay.address
    up_host, up_port = relay.settings.upstream
    print(
        f"netem: {host}:{port} -> {up_host}:{up_port} (seed {relay.counters.seed})",
        file=sys.stderr,
        flush=True,
    )
    counters = relay.run(duration=args.duration)
    print(json.dumps(counters.to_dict(), indent=2), flush=True)
    return 0


class _Lines:
    """Newline-delimited reads from a file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.eof = False
        self._buf = b""

    def _fill(self) -> None:
        chunk = os.read(self.fd, 65536)
        self.eof = not chunk
        self._buf += chunk

    def read_line(self) -> str | None:
        """Block until a whole line (or EOF)."""
        while b"\n" not in self._buf and not self.eof:
            self._fill()
        if b"\n" not in self._buf:
            return None
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def read_available(self) -> list[str]:
        """One read (the fd is readable); the whole lines received so far."""
        self._fill()
        *lines, self._buf = self._buf.split(b"\n")
        return [line.decode() for line in lines]


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _control() -> int:
    """Child mode: settings as one JSON line on stdin; commands "counters"/"stop"; JSON out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    stdin = _Lines(sys.stdin.fileno())
    line = stdin.read_line()
    if line is None:
        return 2
    try:
        relay = Relay(RelaySettings.from_json(line))
    except (ConfigError, OSError, ValueError, KeyError, TypeError) as exc:
        _emit({"error": f"{type(exc).__name__}: {exc}"})
        return 2
    signal.signal(signal.SIGTERM, lambda *_: relay.request_stop())

    def on_command() -> None:
        lines = stdin.read_available()
        for command in lines:
            if command == "counters":
                _emit({"counters": relay.snapshot().to_dict()})
            elif command == "stop":
                relay.request_stop()
        if stdin.eof:
            relay.request_stop()

    relay.add_reader(stdin.fd, on_command)
    relay.start()
    _emit(
        {
            "ready": {
                "address": list(relay.address),
                "addresses": [list(a) for a in relay.addresses],
                "started_at": relay.started_at,
                "seed": relay.counters.seed,
            }
        }
    )
    counters = relay.run()
    _emit({"final": counters.to_dict()})
    return 0
