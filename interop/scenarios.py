"""The scenario table (the QUIC Interop Runner's network scenarios, as in DESIGN.md).

Each scenario names its relay settings, the files each client run fetches, and its budget;
its rule lives in `interop.checks.RULES` under the same name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from quicish.netem import LinkConfig

KB = 1024
MB = 1024 * 1024


@dataclass(frozen=True)
class ClientFlags:
    """Options of one client run; each maps to a ``get`` option of the peer."""

    cipher: str | None = None
    session_ticket: bool = False
    zero_rtt: bool = False
    migrate: bool = False
    key_update: bool = False
    v2: bool = False


@dataclass(frozen=True)
class Run:
    """One client process: fetch ``files`` over one connection."""

    files: tuple[str, ...]
    flags: ClientFlags = ClientFlags()


@dataclass(frozen=True)
class Scenario:
    name: str
    network: str  # for the report
    must_show: str
    files: tuple[tuple[str, int], ...]  # (name, size) served by the server
    runs: tuple[Run, ...]
    both: LinkConfig = field(default_factory=LinkConfig)
    to_server: LinkConfig = field(default_factory=LinkConfig)
    to_client: LinkConfig = field(default_factory=LinkConfig)
    rebind_port: tuple[float, float] | None = None
    rebind_addr: bool = False
    relay: bool = True  # False: client -> tap -> server only (ecn)
    ipv6: bool = False
    server_retry: bool = False
    big_cert: bool = False  # certificate large enough to hit the 3x limit
    cross_traffic: bool = False
    goodput: bool = False  # report kbit/s
    needs: tuple[str, ...] = ()  # features a peer may lack ("ecn", "migrate", ...)
    budget: float = 60.0  # hard limit for the whole cell, seconds
    run_timeout: float = 60.0  # hard limit for one client process
    # quicish's handshake deadline for this scenario (serve --handshake-timeout, get
    # --timeout); None: the default (10 s without progress, for unreachable hosts)
    handshake_timeout: float | None = None
    seed: int = 1
    notes: tuple[str, ...] = field(default=())


BASE = LinkConfig(delay_ms=15, rate_mbit=10, queue=25)
BASE_TEXT = "15 ms delay, 10 Mbit/s, queue 25"


def _one(name: str, size: int) -> tuple[tuple[tuple[str, int], ...], tuple[Run, ...]]:
    return ((name, size),), (Run((name,)),)


def _many(prefix: str, count: int, size: int) -> tuple[tuple[str, int], ...]:
    return tuple((f"{prefix}-{i:04d}.bin", size) for i in range(count))


def _handshakes(count: int) -> tuple[tuple[tuple[str, int], ...], tuple[Run, ...]]:
    return (("hs-1k.bin", KB),), tuple(Run(("hs-1k.bin",)) for _ in range(count))


def build(fast: bool = False) -> dict[str, Scenario]:
    """All scenarios, in the DESIGN.md order. ``fast`` shrinks the slow ones for ``make test``."""
    out: list[Scenario] = []

    def add(s: Scenario) -> None:
        out.append(s)

    files, runs = _one("hs-1k.bin", KB)
    add(
        Scenario(
            "handshake",
            BASE_TEXT,
            "handshake completes",
            files,
            runs,
            both=BASE,
            budget=15 if fast else 30,
            run_timeout=15 if fast else 30,
        )
    )
    tfiles = (("t-1m.bin", MB), ("t-2m.bin", 2 * MB))
    add(
        Scenario(
            "transfer",
            BASE_TEXT,
            "files transferred, close with code 0",
            tfiles,
            (Run(tuple(n for n, _ in tfiles)),),
            both=BASE,
            goodput=True,
            budget=30 if fast else 60,
            run_timeout=30 if fast else 60,
        )
    )
    add(
        Scenario(
            "longrtt",
            "750 ms delay",
            "handshake completes",
            *_one("lr-1k.bin", KB),
            both=LinkConfig(delay_ms=750),
            budget=60,
            run_timeout=60,
        )
    )
    add(
        Scenario(
            "chacha20",
            BASE_TEXT,
            "only ChaCha20-Poly1305 offered; works",
            (("c-256k.bin", 256 * KB),),
            (Run(("c-256k.bin",), ClientFlags(cipher="chacha20")),),
            both=BASE,
            needs=("cipher",),
            budget=30,
            run_timeout=30,
        )
    )
    mfiles = _many("m", 1000 if fast else 2000, 600)
    add(
        Scenario(
            "multiplexing",
            BASE_TEXT,
            "thousands of small files on one connection; stream limits raised",
            mfiles,
            (Run(tuple(n for n, _ in mfiles)),),
            both=BASE,
            budget=45 if fast else 120,
            run_timeout=45 if fast else 120,
        )
    )
    add(
        Scenario(
            "retry",
            BASE_TEXT,
            "server sends Retry; connection with the token completes",
            *_one("r-100k.bin", 100 * KB),
            both=BASE,
            server_retry=True,
            needs=("retry",),
            budget=30,
            run_timeout=30,
        )
    )
    ticket = ClientFlags(session_ticket=True)
    add(
        Scenario(
            "resumption",
            BASE_TEXT,
            "second connection resumes the TLS session",
            (("res-a.bin", 10 * KB), ("res-b.bin", 10 * KB)),
            (Run(("res-a.bin",), ticket), Run(("res-b.bin",), ticket)),
            both=BASE,
            needs=("session_ticket",),
            budget=45,
            run_timeout=20,
        )
    )
    zfiles = _many("z", 5, KB)
    zflags = ClientFlags(session_ticket=True, zero_rtt=True)
    add(
        Scenario(
            "zerortt",
            BASE_TEXT,
            "second connection sends its requests in 0-RTT, server acts on them",
            (("z-first.bin", KB), *zfiles),
            (Run(("z-first.bin",), zflags), Run(tuple(n for n, _ in zfiles), zflags)),
            both=BASE,
            needs=("session_ticket", "zero_rtt"),
            budget=45,
            run_timeout=20,
        )
    )
    add(
        Scenario(
            "blackhole",
            BASE_TEXT + "; link off 2 s after every 5 s on",
            "transfer completes",
            *_one("bh-6m.bin", 6 * MB),
            both=replace(BASE, blackhole=(5.0, 2.0)),
            budget=90,
            run_timeout=90,
        )
    )
    add(
        Scenario(
            "keyupdate",
            BASE_TEXT,
            "an endpoint updates keys mid-transfer; peer follows",
            (("ku-2m.bin", 2 * MB),),
            (Run(("ku-2m.bin",), ClientFlags(key_update=True)),),
            both=BASE,
            needs=("key_update",),
            budget=60,
            run_timeout=60,
        )
    )
    add(
        Scenario(
            "ecn",
            "no relay: client -> recording tap -> server (the relay does not carry IP ECN bits)",
            "ECT(0) marks sent; ACK_ECN counts received",
            *_one("e-1m.bin", MB),
            relay=False,
            needs=("ecn",),
            budget=45,
            run_timeout=45,
        )
    )
    add(
        Scenario(
            "amplificationlimit",
            BASE_TEXT + "; server's datagrams 2-7 to the client dropped",
            "server never sends > 3x what it received before validation",
            *_one("a-5k.bin", 5 * KB),
            both=BASE,
            to_client=LinkConfig(drop_list=(2, 3, 4, 5, 6, 7)),
            big_cert=True,
            budget=60,
            run_timeout=45,
        )
    )
    hs_count = 10 if fast else 50
    add(
        Scenario(
            "handshakeloss",
            "15 ms delay, 10 Mbit/s, 30% loss in bursts of 3",
            f"{hs_count} sequential handshakes all complete",
            *_handshakes(hs_count),
            both=replace(BASE, queue=None, loss_pct=30, burst=3),
            # A handshake under 30% bursty loss may need four probe rounds (1+2+4+8 s of
            # PTO backoff) before its first flight gets through: one client gets 45 s, the
            # same in both modes; the fast subset just runs fewer of them. quicish's 10 s
            # handshake deadline is for hosts that do not answer; here both quicish sides
            # allow 30 s (as a user on such a link would).
            budget=75 if fast else 900,
            run_timeout=45,
            handshake_timeout=30.0,
        )
    )
    add(
        Scenario(
            "transferloss",
            BASE_TEXT + "; 2% loss in bursts of 3",
            "transfer completes",
            *_one("tl-2m.bin", 2 * MB),
            both=replace(BASE, loss_pct=2, burst=3),
            budget=40 if fast else 90,
            run_timeout=40 if fast else 90,
        )
    )
    add(
        Scenario(
            "handshakecorruption",
            "15 ms delay, 10 Mbit/s, 30% corruption in bursts of 3",
            f"{hs_count} sequential handshakes complete",
            *_handshakes(hs_count),
            both=replace(BASE, queue=None, corrupt_pct=30, burst=3),
            # A handshake under 30% bursty loss may need four probe rounds (1+2+4+8 s of
            # PTO backoff) before its first flight gets through: one client gets 45 s, the
            # same in both modes; the fast subset just runs fewer of them. quicish's 10 s
            # handshake deadline is for hosts that do not answer; here both quicish sides
            # allow 30 s (as a user on such a link would).
            budget=75 if fast else 900,
            run_timeout=45,
            handshake_timeout=30.0,
        )
    )
    add(
        Scenario(
            "transfercorruption",
            BASE_TEXT + "; 2% corruption in bursts of 3",
            "transfer completes",
            *_one("tc-2m.bin", 2 * MB),
            both=replace(BASE, corrupt_pct=2, burst=3),
            budget=90,
            run_timeout=90,
        )
    )
    add(
        Scenario(
            "ipv6",
            BASE_TEXT + " over ::1",
            "transfer completes",
            *_one("v6-1m.bin", MB),
            both=BASE,
            ipv6=True,
            budget=45,
            run_timeout=45,
        )
    )
    add(
        Scenario(
            "v2",
            BASE_TEXT,
            "QUIC v2 chosen by compatible version negotiation",
            (("v2-100k.bin", 100 * KB),),
            (Run(("v2-100k.bin",), ClientFlags(v2=True)),),
            both=BASE,
            needs=("v2",),
            budget=30,
            run_timeout=30,
        )
    )
    rsize = 3 * MB if fast else 4 * MB
    add(
        Scenario(
            "rebind-port",
            BASE_TEXT + "; client's port changes after 1 s, then every 5 s",
            "transfer completes, server validates the path",
            *_one("rp.bin", rsize),
            both=BASE,
            rebind_port=(1.0, 5.0),
            needs=("rebinding",),
            budget=35 if fast else 90,
            run_timeout=35 if fast else 90,
        )
    )
    add(
        Scenario(
            "rebind-addr",
            BASE_TEXT + "; client's address and port change likewise",
            "transfer completes, server validates the path",
            *_one("ra.bin", 4 * MB),
            both=BASE,
            rebind_port=(1.0, 5.0),
            rebind_addr=True,
            needs=("rebinding",),
            budget=90,
            run_timeout=90,
        )
    )
    add(
        Scenario(
            "connectionmigration",
            BASE_TEXT,
            "client actively migrates; transfer completes on the new path",
            (("cm-4m.bin", 4 * MB),),
            (Run(("cm-4m.bin",), ClientFlags(migrate=True)),),
            both=BASE,
            needs=("migrate",),
            budget=90,
            run_timeout=90,
        )
    )
    add(
        Scenario(
            "goodput",
            "10 Mbit/s, 15 ms each way (30 ms RTT), queue 25",
            "goodput close to the link rate (>= 70% of 10 Mbit/s)",
            *_one("g-5m.bin", 5 * MB),
            both=BASE,
            goodput=True,
            budget=60,
            run_timeout=60,
        )
    )
    add(
        Scenario(
            "crosstraffic",
            "goodput's link, shared with a competing flow",
            "fair share (Jain's index of the two flows >= 0.8)",
            (("x-5m.bin", 5 * MB), ("x-competitor.bin", 40 * MB)),
            (Run(("x-5m.bin",)),),
            both=BASE,
            goodput=True,
            cross_traffic=True,
            budget=120,
            run_timeout=90,
        )
    )
    return {s.name: s for s in out}


FAST = ("handshake", "transfer", "transferloss", "handshakeloss", "multiplexing", "rebind-port")
ALL = tuple(build())
