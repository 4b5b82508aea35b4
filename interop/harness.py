"""Run one cell (scenario x pair) end to end, and the matrix as a loop over cells.

A cell: fresh server process (with a TLS key log) -> recording tap -> netem relay -> client
process(es) with hard timeouts; then SHA-256 of every file, the relay's counters, the wire
analysis, and the scenario's rule (`interop.checks.RULES`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from quicish.netem import Netem

from .analysis import analyze, parse_keylog, session_rates
from .certs import ServerCert, make_cert
from .checks import RULES
from .evidence import FAILED, PASSED, UNSUPPORTED, Cross, Evidence, Result
from .files import check_files, make_files
from .pcap import write_pcap
from .peers import AIOQUIC, Pair
from .procs import Background, ServerProcess, free_udp_port, run_client
from .scenarios import Scenario
from .tap import Record, Tap

SERVER_START_TIMEOUT = 20.0
COMPETITOR_RAMP_BYTES = 300_000
COMPETITOR_RAMP_TIMEOUT = 8.0


def _url(address: tuple[str, int], name: str) -> str:
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"https://{host}:{address[1]}/{name}"


class Workspace:
    """Files and certificates shared by the cells of one matrix run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.www = root / "www"
        self._certs: dict[bool, ServerCert] = {}

    def cert(self, big: bool) -> ServerCert:
        if big not in self._certs:
            name = "big" if big else "server"
            self._certs[big] = make_cert(self.root / "certs", name, padding_names=120 if big else 0)
        return self._certs[big]


def run_cell(scenario: Scenario, pair: Pair, ws: Workspace) -> Result:
    """Run and judge one cell; never raises for a failing implementation."""
    started = time.monotonic()
    result = _run_cell(scenario, pair, ws, started)
    if result.status == FAILED:
        pending = pair.server.pending_note(scenario.needs) or pair.client.pending_note(
            scenario.needs
        )
        if pending:
            result.status = UNSUPPORTED
            result.reason = f"{pending}; run failed: {result.reason}"
    result.seconds = time.monotonic() - started
    return result


def _run_cell(scenario: Scenario, pair: Pair, ws: Workspace, started: float) -> Result:
    def verdict(status: str, reason: str = "", details: Iterable[str] = ()) -> Result:
        return Result(scenario.name, pair.label, status, reason, details=list(details))

    lacking = pair.client.lacking("client", scenario.needs) or pair.server.lacking(
        "server", scenario.needs
    )
    if lacking:
        return verdict(UNSUPPORTED, lacking)
    cell_dir = ws.root / f"{scenario.name}--{pair.label}"
    shutil.rmtree(cell_dir, ignore_errors=True)
    cell_dir.mkdir(parents=True)
    digests = make_files(ws.www, list(scenario.files), scenario.seed)
    cert = ws.cert(scenario.big_cert)
    ev = Evidence(
        scenario,
        pair,
        cell_dir,
        cert,
        expected=[{name: digests[name] for name in run.files} for run in scenario.runs],
    )
    deadline = started + scenario.budget
    host = "::1" if scenario.ipv6 else "127.0.0.1"
    keylog = cell_dir / "server.keylog"
    server = ServerProcess(
        pair.server.server_argv(
            host,
            free_udp_port(host),
            ws.www,
            cert.cert,
            cert.key,
            keylog,
            scenario.server_retry,
            handshake_timeout=scenario.handshake_timeout,
        ),
        cell_dir / "server.log",
    )
    failure = server.start(SERVER_START_TIMEOUT)
    if failure is not None:
        text = " ".join(server.lines)
        if server.exit_code == 2 and ("not implemented" in text or "unrecognized" in text):
            return verdict(UNSUPPORTED, f"server: {failure}")
        return verdict(FAILED, failure)
    assert server.port is not None
    competitor_server: ServerProcess | None = None
    competitor: Background | None = None
    tap: Tap | None = None
    client_tap: Tap | None = None  # client side of the relay: diagnostics only
    relay: Netem | None = None
    outcome: tuple[str, str] | None = None
    competitor_exit: int | None = None
    route: Callable[[int], tuple[str, int] | None] | None = None
    try:
        if scenario.cross_traffic:
            competitor_server = ServerProcess(
                AIOQUIC.server_argv(
                    host,
                    free_udp_port(host),
                    ws.www,
                    cert.cert,
                    cert.key,
                    cell_dir / "competitor.keylog",
                    False,
                    cc="reno",
                ),
                cell_dir / "competitor-server.log",
            )
            if (failure := competitor_server.start(SERVER_START_TIMEOUT)) is not None:
                return verdict(FAILED, f"competitor {failure}")
            assert competitor_server.port is not None
            competitor_addr = (host, competitor_server.port)

            def route(index: int) -> tuple[str, int] | None:  # the competitor comes first
                return competitor_addr if index == 0 else None

        tap = Tap((host, server.port), route=route, preserve_ecn=not scenario.relay)
        tap.start()
        target = tap.address
        if scenario.relay:
            relay = Netem(
                tap.address,
                listen=(host, 0),
                both=scenario.both,
                to_server=scenario.to_server,
                to_client=scenario.to_client,
                rebind_port=scenario.rebind_port,
                rebind_addr=scenario.rebind_addr,
                seed=scenario.seed,
            ).start()
            client_tap = Tap(relay.address, listen_host=host)
            client_tap.start()
            target = client_tap.address
        if scenario.cross_traffic:
            competitor = Background(
                [
                    *AIOQUIC.client_argv(
                        [_url(target, "x-competitor.bin")],
                        cell_dir / "out-competitor",
                        cert.fingerprint,
                        scenario.runs[0].flags,
                        None,
                    ),
                    "--cc",
                    "reno",
                ],
                cell_dir / "competitor-client.log",
            )
            if not _wait_for_competitor(tap, competitor):
                outcome = (FAILED, "the competing flow did not get going (competitor-client.log)")
        if outcome is None:
            outcome = _client_runs(scenario, pair, ev, target, deadline)
    finally:
        if competitor is not None:
            competitor_exit = competitor.stop()
        if client_tap is not None:
            client_tap.stop()
        if relay is not None:
            ev.counters = relay.stop()
        if tap is not None:
            tap.stop()
            ev.records, ev.sessions = tap.records, tap.sessions
        server.stop()
        if competitor_server is not None:
            competitor_server.stop()
        ev.server_output, ev.server_exit = server.lines, server.exit_code
    if ev.records:
        write_pcap(cell_dir / "tap.pcap", ev.records, ev.sessions)
    if client_tap is not None and client_tap.records:
        write_pcap(cell_dir / "client-tap.pcap", client_tap.records, client_tap.sessions)
    log_text = keylog.read_text(errors="replace") if keylog.exists() else ""
    competitor_log = cell_dir / "competitor.keylog"
    if competitor_log.exists():
        log_text += competitor_log.read_text(errors="replace")
    ev.keylog_lines = len(log_text.splitlines())
    ev.analysis = analyze(ev.records, parse_keylog(log_text))
    details = [f"wire: {ev.analysis.summary()}"]
    if ev.counters is not None:
        details.append(f"relay: {_counters_text(ev)}")
    crash = _server_exception(ev.server_output)
    if crash:
        details.append(f"server logged an exception: {crash}")
    if outcome is not None:
        if client_tap is not None and client_tap.records:
            details.append(_last_exchange(client_tap.records, ev.records))
        reason = outcome[1] + (f"; server logged {crash}" if crash else "")
        return verdict(outcome[0], reason, details)
    if scenario.cross_traffic and len(ev.sessions) >= 2:
        ev.cross = _cross(ev, competitor_exit)
    if (
        relay is not None
        and ev.counters is not None
        and (ev.counters.to_server.forwarded == 0 or ev.counters.to_client.forwarded == 0)
    ):
        return verdict(FAILED, "relay forwarded nothing in one direction", details)
    judged = RULES[scenario.name](ev)
    result = verdict(judged.status, judged.reason, details + judged.notes)
    if scenario.goodput and ev.runs:
        result.kbps = ev.cross.measured_kbps if ev.cross else ev.runs[-1].kbps
    return result


def _client_runs(
    scenario: Scenario, pair: Pair, ev: Evidence, target: tuple[str, int], deadline: float
) -> tuple[str, str] | None:
    """Run the clients in order; (status, reason) on the first that does not succeed."""
    ticket = ev.workdir / "session.ticket"
    total = len(scenario.runs)
    for i, run in enumerate(scenario.runs):
        label = f"run {i + 1}/{total}: " if total > 1 else ""
        remaining = deadline - time.monotonic()
        if remaining < 1.0:
            return FAILED, f"{label}cell budget of {scenario.budget:.0f} s used up"
        out = ev.workdir / f"out-{i}"
        argv = pair.client.client_argv(
            [_url(target, name) for name in run.files],
            out,
            ev.cert.fingerprint,
            run.flags,
            ticket,
            handshake_timeout=scenario.handshake_timeout,
        )
        cr = run_client(argv, min(scenario.run_timeout, remaining), ev.workdir / f"client-{i}.log")
        ev.runs.append(cr)
        if (why := cr.unsupported) is not None:
            return UNSUPPORTED, f"{pair.client.name} client: {why}"
        if (why := cr.failure()) is not None:
            bad = check_files(out, ev.expected[i]) if out.exists() else "no output directory"
            return FAILED, f"{label}{why}" + (f"; {bad}" if bad and cr.timed_out else "")
        bad = check_files(out, ev.expected[i])
        ev.file_errors.append(bad)
        if bad is not None:
            return FAILED, f"{label}{bad}"
    return None


def _wait_for_competitor(tap: Tap, competitor: Background) -> bool:
    """Wait until the competing flow has moved some data; False if it never did."""
    end = time.monotonic() + COMPETITOR_RAMP_TIMEOUT
    seen = 0
    while time.monotonic() < end and competitor.proc.poll() is None:
        records = tap.records[:]
        seen = sum(len(r.data) for r in records if not r.to_server and r.session == 0)
        if seen >= COMPETITOR_RAMP_BYTES:
            return True
        time.sleep(0.1)
    return seen > 0 and competitor.proc.poll() is None


def _cross(ev: Evidence, competitor_exit: int | None) -> Cross:
    measured = [r for r in ev.records if r.session == 1]
    start, end = measured[0].t, measured[-1].t
    rates = session_rates(ev.records, start, end)
    a, b = rates.get(1, 0.0), rates.get(0, 0.0)
    jain = (a + b) ** 2 / (2 * (a * a + b * b)) if a or b else 0.0
    return Cross(a, b, jain, end - start, competitor_exit)


def _last_exchange(client_side: list[Record], server_side: list[Record]) -> str:
    """For a failed run: the last client's datagrams on both sides of the relay."""
    last = client_side[-1].session
    mine = [r for r in client_side if r.session == last]
    start = mine[0].t
    sent = [r.t - start for r in mine if r.to_server]
    got = [r.t - start for r in mine if not r.to_server]
    at_server = [r for r in server_side if r.t >= start]
    s_got = [r.t - start for r in at_server if r.to_server]
    s_sent = [r.t - start for r in at_server if not r.to_server]

    def span(ts: list[float]) -> str:
        return f"{len(ts)} (last +{ts[-1]:.2f} s)" if ts else "0"

    return (
        f"last client connection, seconds from its first datagram: client sent {span(sent)}, "
        f"received {span(got)}; server received {span(s_got)}, sent {span(s_sent)} "
        "(client-tap.pcap / tap.pcap)"
    )


def _server_exception(lines: list[str]) -> str | None:
    """The first exception a server process logged (its last traceback line), if any."""
    in_traceback = False
    for line in lines:
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            return line.strip()[:200]
    return None


def _counters_text(ev: Evidence) -> str:
    c = ev.counters
    assert c is not None
    parts = []
    for name, d in (("to server", c.to_server), ("to client", c.to_client)):
        extra = [
            f"{k} {v}"
            for k, v in (
                ("lost", d.dropped_loss),
                ("queue-dropped", d.dropped_queue),
                ("blackholed", d.dropped_blackhole),
                ("drop-listed", d.dropped_drop_list),
                ("corrupted", d.corrupted),
            )
            if v
        ]
        parts.append(f"{name} {d.forwarded} fwd" + (f" ({', '.join(extra)})" if extra else ""))
    if c.rebinds:
        parts.append(f"{c.rebinds} rebinds")
    return "; ".join(parts)


def run_matrix(
    scenarios: list[Scenario],
    pairs: list[Pair],
    workdir: Path,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Every scenario for every pair, one cell at a time."""
    ws = Workspace(workdir)
    results: list[Result] = []
    for scenario in scenarios:
        for pair in pairs:
            try:
                result = run_cell(scenario, pair, ws)
            except Exception as exc:  # a harness bug must not hide the other cells
                result = Result(
                    scenario.name, pair.label, FAILED, f"harness error: {type(exc).__name__}: {exc}"
                )
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


__all__ = ["PASSED", "Workspace", "run_cell", "run_matrix"]
