"""Each scenario's own rule, applied after the common checks (exit codes, SHA-256, relay).

A rule returns a `Verdict`. Wire facts come from `interop.analysis` (the tap recording plus
the server's key log); "key: value" lines the client printed are cross-checks or, where the
wire cannot show a fact, the evidence itself (named in the reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .analysis import Analysis, Conn
from .evidence import FAILED, PASSED, UNSUPPORTED, Evidence
from .quicwire import SUITE_NAMES, TLS_CHACHA20_POLY1305_SHA256, V1, V2

GOODPUT_FRACTION = 0.70  # of the 10 Mbit/s link
LINK_KBPS = 10_000
JAIN_MIN = 0.8


@dataclass
class Verdict:
    status: str
    reason: str = ""
    notes: list[str] = field(default_factory=list)


def ok(*notes: str) -> Verdict:
    return Verdict(PASSED, "", [n for n in notes if n])


def fail(reason: str) -> Verdict:
    return Verdict(FAILED, reason)


def unsupported(reason: str) -> Verdict:
    return Verdict(UNSUPPORTED, reason)


Rule = Callable[[Evidence], Verdict]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return register


# -- helpers ----------------------------------------------------------------------------


def _analysis(ev: Evidence) -> Analysis:
    assert ev.analysis is not None
    return ev.analysis


def _conns(ev: Evidence, expected: int) -> list[Conn] | Verdict:
    conns = _analysis(ev).conns
    if len(conns) != expected:
        return fail(f"expected {expected} connection(s) on the wire, saw {len(conns)}")
    return conns


def _no_keys(ev: Evidence, conn: Conn, what: str) -> Verdict | None:
    """Unsupported when the server's key log cannot decrypt ``conn`` (so ``what`` is unseen)."""
    if ev.keylog_lines == 0:
        return unsupported(f"server wrote no TLS key log (--keylog), cannot check {what}")
    if not conn.decrypted.get("1rtt"):
        return unsupported(f"key log does not decrypt this connection's 1-RTT packets ({what})")
    return None


def _v1_only(conn: Conn) -> str | None:
    bad = {v for v in conn.client_versions + conn.server_versions if v != V1}
    return f"unexpected version(s) {', '.join(hex(v) for v in bad)}" if bad else None


def _rtt_note(conn: Conn, minimum: float) -> Verdict | None:
    rtt = conn.handshake_rtt
    if rtt is None:
        return fail("no Handshake packet from the client reached the server")
    if rtt < minimum:
        return fail(
            f"handshake RTT {rtt * 1000:.0f} ms < {minimum * 1000:.0f} ms: delay not applied"
        )
    return None


def _disagrees(ev: Evidence, key: str, expected: str) -> Verdict | None:
    """Fail when the client printed ``key: value`` contradicting what the wire shows."""
    said = ev.value(key)
    if said is not None and said != expected:
        return fail(f"the wire shows {key} {expected} but the client printed '{key}: {said}'")
    return None


def _ticks(values: list[float], start: float) -> str:
    return ", ".join(f"+{v - start:.2f} s" for v in values[:4])


# -- rules ------------------------------------------------------------------------------


@rule("handshake")
def _handshake(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if (bad := _v1_only(c)) is not None:
        return fail(bad)
    if (late := _rtt_note(c, 0.025)) is not None:
        return late
    if ev.keylog_lines and c.handshake_done_t is None and c.decrypted.get("1rtt"):
        return fail("server never sent HANDSHAKE_DONE")
    return ok(
        f"handshake RTT at the server {c.handshake_rtt * 1000:.0f} ms" if c.handshake_rtt else ""
    )


@rule("transfer")
def _transfer(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if (missing := _no_keys(ev, c, "the CONNECTION_CLOSE code")) is not None:
        return missing
    if not c.closes:
        return fail("no CONNECTION_CLOSE seen")
    _, to_server, ftype, code = c.closes[0]
    who = "client" if to_server else "server"
    if code != 0:
        return fail(f"{who} closed with code {code:#x} (frame {ftype:#x})")
    return ok(f"{who} closed with code 0 (frame {ftype:#x})")


@rule("longrtt")
def _longrtt(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if (bad := _rtt_note(c, 1.4)) is not None:
        return bad
    assert c.handshake_rtt is not None
    return ok(f"handshake RTT at the server {c.handshake_rtt:.2f} s")


@rule("chacha20")
def _chacha20(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if c.client_hello is None or c.server_hello is None:
        return fail("could not read the ClientHello/ServerHello from the Initial packets")
    offered = c.client_hello.cipher_suites
    if offered != [TLS_CHACHA20_POLY1305_SHA256]:
        names = ", ".join(SUITE_NAMES.get(s, hex(s)) for s in offered)
        return fail(f"client offered {names}")
    chosen = c.server_hello.cipher_suites[0]
    if chosen != TLS_CHACHA20_POLY1305_SHA256:
        return fail(f"server chose {SUITE_NAMES.get(chosen, hex(chosen))}")
    return ok("ClientHello offered only TLS_CHACHA20_POLY1305_SHA256; ServerHello chose it")


@rule("multiplexing")
def _multiplexing(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    files = len(ev.expected[0])
    ee = c.encrypted_extensions
    if ee is None:
        if ev.keylog_lines == 0:
            return unsupported("server wrote no TLS key log, cannot read its stream limits")
        return fail("could not decrypt EncryptedExtensions (server transport parameters)")
    initial = ee.tp_varint(0x08) or 0
    if initial >= files:
        return fail(
            f"server allowed all {files} streams up front "
            f"(initial_max_streams_bidi {initial}): limits never raised"
        )
    if c.max_streams_bidi < files:
        return fail(
            f"server's MAX_STREAMS reached only {c.max_streams_bidi} for {files} streams "
            f"(initial {initial})"
        )
    return ok(f"initial_max_streams_bidi {initial}, raised by MAX_STREAMS to {c.max_streams_bidi}")


@rule("retry")
def _retry(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if c.retry_scid is None:
        return fail("server sent no Retry")
    if not c.retry_token_echoed:
        return fail("client's next Initial did not carry the Retry token")
    if (said := _disagrees(ev, "retry", "yes")) is not None:
        return said
    return ok(f"Retry token of {len(c.retry_token or b'')} bytes echoed")


@rule("resumption")
def _resumption(ev: Evidence) -> Verdict:
    conns = _conns(ev, 2)
    if isinstance(conns, Verdict):
        return conns
    first, second = conns
    if second.client_hello is None or second.server_hello is None:
        return fail("could not read the second ClientHello/ServerHello")
    if first.resumed:
        return fail("first connection already resumed")
    if not second.client_hello.has_psk:
        return fail("second ClientHello offered no PSK (no session ticket stored?)")
    if not second.resumed:
        return fail("server did not accept the PSK (full handshake)")
    if (said := _disagrees(ev, "resumed", "yes")) is not None:
        return said
    return ok("second ServerHello carries pre_shared_key")


@rule("zerortt")
def _zerortt(ev: Evidence) -> Verdict:
    conns = _conns(ev, 2)
    if isinstance(conns, Verdict):
        return conns
    second = conns[1]
    requests = len(ev.expected[1])
    if second.client_hello is None or not second.client_hello.has_early_data:
        psk = "yes" if second.client_hello and second.client_hello.has_psk else "no"
        return fail(f"second ClientHello did not offer early_data (PSK offered: {psk})")
    if second.zero_rtt_packets == 0:
        return fail("client sent no 0-RTT packets")
    said = ev.value("early_data_accepted")
    if ev.keylog_lines == 0 or not second.decrypted.get("0rtt"):
        if said == "yes":
            return ok(
                f"{second.zero_rtt_packets} 0-RTT packets; acceptance from the client's "
                "'early_data_accepted: yes' (no key log to decrypt them)"
            )
        return unsupported(
            "cannot decrypt the 0-RTT packets (no key log) and the client did "
            "not print 'early_data_accepted: yes'"
        )
    if not second.early_data_accepted:
        return fail("server rejected 0-RTT (no early_data in EncryptedExtensions)")
    if len(second.requests_0rtt) < requests:
        return fail(f"only {len(second.requests_0rtt)} of {requests} requests were in 0-RTT")
    resent = second.requests_0rtt & second.requests_1rtt
    if resent:
        return fail(f"{len(resent)} request(s) re-sent in 1-RTT")
    if (disagree := _disagrees(ev, "early_data_accepted", "yes")) is not None:
        return disagree
    return ok(f"all {requests} requests in {second.zero_rtt_packets} 0-RTT packet(s); accepted")


@rule("blackhole")
def _blackhole(ev: Evidence) -> Verdict:
    assert ev.counters is not None
    dropped = ev.counters.to_server.dropped_blackhole + ev.counters.to_client.dropped_blackhole
    if dropped == 0:
        return fail("transfer ended before the first blackhole period")
    return ok(f"{dropped} datagrams dropped by the blackhole")


@rule("keyupdate")
def _keyupdate(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if (missing := _no_keys(ev, c, "key phases")) is not None:
        said = ev.value("key_update")
        if said == "yes":
            return ok("client printed 'key_update: yes' (no key log to see the key phase)")
        return missing
    up, down = c.key_updates[True], c.key_updates[False]
    if not up and not down:
        return fail("no key phase change on the wire")
    if not up or not down:
        who = "server" if up else "client"
        return fail(f"only one direction changed keys; the {who} never followed")
    if c.last_stream_to_client is None or c.last_stream_to_client[0] <= min(up[0], down[0]):
        return fail("the key update came after the transfer, not during it")
    if (disagree := _disagrees(ev, "key_update", "yes")) is not None:
        return disagree
    return ok(
        f"key phase changes from the connection's start: client {_ticks(up, c.first_t)}, "
        f"server {_ticks(down, c.first_t)}; file data continued after"
    )


@rule("ecn")
def _ecn(ev: Evidence) -> Verdict:
    a = _analysis(ev)
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if a.ecn_marked[True] == 0 and a.ecn_marked[False] == 0:
        return unsupported("no ECT(0) marks on any datagram (ECN not implemented)")
    if a.ecn_marked[True] == 0:
        return fail("client sends no ECT(0) marks")
    if a.ecn_marked[False] == 0:
        return fail("server sends no ECT(0) marks")
    if (missing := _no_keys(ev, c, "ACK_ECN counts")) is not None:
        return missing
    if c.ack_ecn_ect0[False] == 0:
        return fail("server's ACKs carry no ECT(0) count")
    if c.ack_ecn_ect0[True] == 0:
        return fail("client's ACKs carry no ECT(0) count")
    return ok(
        f"ECT(0) datagrams: {a.ecn_marked[True]} to server, {a.ecn_marked[False]} to "
        f"client; ACK_ECN ECT(0) counts up to {c.ack_ecn_ect0[False]} / "
        f"{c.ack_ecn_ect0[True]}"
    )


@rule("amplificationlimit")
def _amplification(ev: Evidence) -> Verdict:
    assert ev.counters is not None
    if ev.counters.to_client.dropped_drop_list == 0:
        return fail("the relay dropped none of the server's datagrams 2-7")
    amps = _analysis(ev).amplification
    for amp in amps:
        if amp.violation:
            return fail(amp.violation)
    worst = max((a.worst_ratio for a in amps if a.received), default=0.0)
    return ok(
        f"{ev.counters.to_client.dropped_drop_list} server datagrams dropped; "
        f"worst sent/received before validation {worst:.2f} (certificate "
        f"{ev.cert.size} bytes)"
    )


def _handshakes(ev: Evidence, counter: str) -> Verdict:
    assert ev.counters is not None
    c = ev.counters
    hit = getattr(c.to_server, counter) + getattr(c.to_client, counter)
    if hit == 0:
        return fail(f"relay {counter.replace('_', ' ')} count is 0")
    conns = _analysis(ev).conns
    completed = sum(1 for conn in conns if conn.client_hello is not None)
    if completed < len(ev.runs):
        return fail(f"only {completed} ClientHellos on the wire for {len(ev.runs)} runs")
    return ok(f"{len(ev.runs)} handshakes; relay {counter.replace('_', ' ')} {hit} datagrams")


@rule("handshakeloss")
def _handshakeloss(ev: Evidence) -> Verdict:
    return _handshakes(ev, "dropped_loss")


@rule("handshakecorruption")
def _handshakecorruption(ev: Evidence) -> Verdict:
    return _handshakes(ev, "corrupted")


@rule("transferloss")
def _transferloss(ev: Evidence) -> Verdict:
    assert ev.counters is not None
    lost = ev.counters.to_server.dropped_loss + ev.counters.to_client.dropped_loss
    return ok(f"{lost} datagrams lost") if lost else fail("relay lost no datagrams")


@rule("transfercorruption")
def _transfercorruption(ev: Evidence) -> Verdict:
    assert ev.counters is not None
    bad = ev.counters.to_server.corrupted + ev.counters.to_client.corrupted
    return ok(f"{bad} datagrams corrupted") if bad else fail("relay corrupted no datagrams")


@rule("ipv6")
def _ipv6(ev: Evidence) -> Verdict:
    if not ev.sessions or ":" not in ev.sessions[0].local[0]:
        return fail("traffic did not use IPv6")
    return ok(f"server saw the client at [{ev.sessions[0].local[0]}]:{ev.sessions[0].local[1]}")


@rule("v2")
def _v2(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if not c.client_versions or c.client_versions[0] != V1:
        return fail("client's first Initial was not QUIC v1 (compatible negotiation starts in v1)")
    vi = c.client_hello.version_information() if c.client_hello else None
    if vi is None or V2 not in vi[1]:
        return fail("client did not offer v2 in version_information")
    if V2 not in c.server_versions:
        return fail("server stayed on v1")
    if c.client_versions[-1] != V2:
        return fail("client did not switch to v2")
    if (said := _disagrees(ev, "version", "v2")) is not None:
        return said
    return ok("client started in v1 offering v2; both ended in v2")


def _rebind(ev: Evidence, want_new_ip: bool) -> Verdict:
    assert ev.counters is not None
    if ev.counters.rebinds == 0:
        return fail("the relay never rebound (transfer too short?)")
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    moved = [s for s in sorted(c.sessions) if s != min(c.sessions)]
    if not moved:
        return fail("server never saw a new client address")
    carried = [s for s in moved if c.stream_bytes_to_client.get(s, 0) > 0]
    if (missing := _no_keys(ev, c, "PATH_CHALLENGE/PATH_RESPONSE")) is not None:
        return missing
    if not carried:
        return fail("no data went to a new address: transfer ended before the first rebinding")
    validated = c.validated_paths()
    unvalidated = [s for s in carried if s not in validated]
    if unvalidated:
        addr = ev.sessions[unvalidated[0]].local
        return fail(
            f"server sent data to new address {addr[0]}:{addr[1]} without a "
            "PATH_CHALLENGE answered from it"
        )
    if want_new_ip:
        ips = {ev.sessions[s].local[0] for s in c.sessions}
        if len(ips) < 2:
            return fail("the client's IP address never changed at the server")
    return ok(f"{ev.counters.rebinds} rebinding(s); server validated {len(carried)} new path(s)")


@rule("rebind-port")
def _rebind_port(ev: Evidence) -> Verdict:
    return _rebind(ev, want_new_ip=False)


@rule("rebind-addr")
def _rebind_addr(ev: Evidence) -> Verdict:
    return _rebind(ev, want_new_ip=True)


@rule("connectionmigration")
def _migration(ev: Evidence) -> Verdict:
    conns = _conns(ev, 1)
    if isinstance(conns, Verdict):
        return conns
    c = conns[0]
    if len(c.sessions) < 2:
        return fail("server never saw the client on a second address")
    if (missing := _no_keys(ev, c, "path validation")) is not None:
        return missing
    first = min(c.sessions)
    if c.last_stream_to_client is None or c.last_stream_to_client[1] == first:
        return fail("transfer did not finish on the new path")
    new = c.last_stream_to_client[1]
    if new not in c.validated_paths():
        return fail("server did not validate the new path (no PATH_CHALLENGE answered there)")
    if (said := _disagrees(ev, "migrated", "yes")) is not None:
        return said
    probed = "client probed it too" if new in c.client_probed_paths() else "client did not probe"
    return ok(f"transfer finished on the new path; server validated it; {probed}")


@rule("goodput")
def _goodput(ev: Evidence) -> Verdict:
    kbps = ev.runs[-1].kbps
    if kbps is None:
        return fail("client printed no 'fetched ... Mbit/s' line")
    if kbps < GOODPUT_FRACTION * LINK_KBPS:
        return fail(f"{kbps:,.0f} kbit/s < {GOODPUT_FRACTION:.0%} of the 10 Mbit/s link")
    return ok()


@rule("crosstraffic")
def _crosstraffic(ev: Evidence) -> Verdict:
    x = ev.cross
    if x is None:
        return fail("no cross-traffic measurement")
    note = (
        f"measured flow {x.measured_kbps:,.0f} kbit/s vs competitor "
        f"{x.competitor_kbps:,.0f} kbit/s over {x.window:.1f} s, Jain index {x.jain:.2f}"
    )
    if x.competitor_kbps <= 0:
        return fail("the competing flow moved no data during the measured transfer")
    if x.jain < JAIN_MIN:
        return fail(note)
    return ok(note)
