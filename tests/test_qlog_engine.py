"""The engine writes qlog (sans-IO, on the simulated network): the events, their counts
against ``stats()``, the switches, and that tracing off creates nothing."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pairs import PathNet, Peer, connected, make_net, make_path_pair
from support import cyclic_garbage

import quicish.proto.trace as trace_module
import quicish.qlog.sinks as sinks_module
import quicish.qlog.writer as writer_module
from quicish.proto.connection import Connection
from quicish.proto.endpoint import Endpoint
from quicish.qlog import analyze, assert_valid, check_packet_numbers, match_packets, read_qlog
from quicish.qlog.schema import PACKET_DROP_TRIGGERS, PACKET_LOST_TRIGGERS
from quicish.simlink import LinkSpec
from quicish.wire.packet import PacketType, encode_long_header

#: Every event type the engine emits (item 1 of issue 17), without the namespace.
ALL_EVENTS = {
    "connection_started",
    "connection_closed",
    "connection_state_updated",
    "version_information",
    "alpn_information",
    "parameters_set",
    "packet_sent",
    "packet_received",
    "packet_lost",
    "packets_acked",
    "packet_dropped",
    "recovery_parameters_set",
    "recovery_metrics_updated",
    "congestion_state_updated",
    "key_updated",
    "key_discarded",
    "connection_id_updated",
    "migration_state_updated",
    "tuple_assigned",
    "stream_state_updated",
}


def close_bytes(trace: Any) -> int:
    """Bytes of the packets carrying CONNECTION_CLOSE: sealed and logged as sent, but not
    counted in ``stats().bytes_sent`` (which counts the datagrams of datagrams_to_send's
    data path; the closing datagram is built apart)."""
    return sum(
        ev.data["raw"]["length"]
        for ev in trace.named("quic:packet_sent")
        if any(fr["frame_type"] == "connection_close" for fr in ev.data.get("frames", ()))
    )


def run_to_end(net: Any, *peers: Peer, timeout: float = 60.0) -> None:
    assert net.run_until(
        lambda: net.client.is_closed and net.server.is_closed, *peers, timeout=timeout
    )


def test_lossy_transfer_qlog_agrees_with_stats(tmp_path: Path) -> None:
    """Both ends write qlog through a lossy, reordering link: each file is valid, packet
    numbers rise per space, and the counts are stats()'s, exactly; every packet_lost has
    a trigger, reordering-threshold ones at least 3 below the largest acknowledged."""
    kw = {"qlog_dir": str(tmp_path)}
    net = make_net(
        link=LinkSpec(delay=0.01, loss=0.04, reorder=0.02), seed=11, client_kw=kw, server_kw=kw
    )
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(600_000), end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60)
    net.server.send_stream_data(sid, bytes(200_000), end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=60)
    net.client.close(0, "done", net.now)
    run_to_end(net, c, s)

    files = sorted(os.listdir(tmp_path))
    odcid = net.client._handshake.original_dcid.hex()
    assert files == [f"{odcid}_client.sqlog", f"{odcid}_server.sqlog"]
    assert net.client.qlog_path == str(tmp_path / files[0])
    for conn, name in ((net.client, files[0]), (net.server, files[1])):
        path = tmp_path / name
        assert_valid(path)
        trace = read_qlog(path)
        assert check_packet_numbers(trace) == []
        a = analyze(trace)
        stats = conn.stats()
        assert a.packets_sent == stats.packets_sent
        assert a.packets_received == stats.packets_received
        assert a.packets_lost == stats.packets_lost
        assert a.bytes_lost == stats.bytes_lost
        assert a.bytes_sent == stats.bytes_sent + close_bytes(trace)
        # bytes_received counts whole datagrams; the trace's received packets plus the
        # packets it logged as dropped make them up exactly
        dropped = sum(ev.data["raw"]["length"] for ev in trace.named("quic:packet_dropped"))
        assert a.bytes_received + dropped == stats.bytes_received
        lost = trace.named("quic:packet_lost")
        assert {ev.data["trigger"] for ev in lost} <= PACKET_LOST_TRIGGERS
        if conn is net.client:
            assert stats.packets_lost > 5  # (the test would prove little without losses)
            assert "reordering_threshold" in {ev.data["trigger"] for ev in lost}
        names = Counter(ev.name for ev in trace.events)
        assert names["quic:connection_closed"] == 1
        assert names["quic:connection_started"] == 1
    client_trace = read_qlog(tmp_path / files[0])
    server_trace = read_qlog(tmp_path / files[1])
    up = match_packets(client_trace, server_trace)
    down = match_packets(server_trace, client_trace)
    for m in (up, down):
        assert m.unexpected == [] and m.duplicates == 0
    assert len(up.missing) > 0  # the link lost some; the receiver never logged those
    closed = client_trace.named("quic:connection_closed")[0].data
    assert closed["initiator"] == "local" and closed["trigger"] == "application"
    assert closed["reason"] == "done"


def test_lost_events_match_stats_with_a_callback() -> None:
    """The callback form: one packet_lost per packet stats() counts lost, with the draft's
    trigger; the tracer attached mid-connection sees only what follows."""
    net = make_net(to_server=LinkSpec(delay=0.01, loss=0.06), seed=3)
    seen: list[tuple[str, dict[str, Any]]] = []
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    before = net.client.stats()
    net.client.tracer = lambda name, data: seen.append((name, data))
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(400_000), end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60)
    after = net.client.stats()
    lost = [d for n, d in seen if n == "packet_lost"]
    assert len(lost) == after.packets_lost - before.packets_lost > 0
    assert all(d["trigger"] in PACKET_LOST_TRIGGERS for d in lost)
    assert all(d["header"]["packet_type"] == "1RTT" for d in lost)
    sent = [d for n, d in seen if n == "packet_sent"]
    assert len(sent) == after.packets_sent - before.packets_sent
    stream_frames = [fr for d in sent for fr in d["frames"] if fr["frame_type"] == "stream"]
    assert sum(fr["raw"]["length"] for fr in stream_frames) >= 400_000
    assert any(fr["fin"] for fr in stream_frames)


def test_off_makes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """No qlog_dir, no QLOGDIR, no tracer: a whole lossy connection creates no Trace, no
    writer and no sink, and its parts hold None."""
    monkeypatch.delenv("QLOGDIR", raising=False)
    made: Counter[str] = Counter()
    for module, name in (
        (trace_module, "Trace"),
        (writer_module, "QlogWriter"),
        (sinks_module, "CallbackSink"),
        (sinks_module, "FanOut"),
    ):
        cls = getattr(module, name)
        original = cls.__init__

        def counting(self: Any, *a: Any, _n: str = name, _o: Any = original, **k: Any) -> None:
            made[_n] += 1
            _o(self, *a, **k)

        monkeypatch.setattr(cls, "__init__", counting)
    net = make_net(link=LinkSpec(delay=0.01, loss=0.03), seed=5)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(200_000), end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60)
    assert net.client.stats().packets_lost > 0
    net.client.close(0, "", net.now)
    run_to_end(net, c, s)
    assert made == Counter()
    for conn in (net.client, net.server):
        assert conn._trace is None and conn.tracer is None and conn.qlog_path is None
        assert conn._builder.trace is None and conn._frames.trace is None
        assert conn._lifecycle.trace is None and conn._migration.trace is None
        assert conn._recovery.on_metrics is None
    # and a tracer attached then detached leaves nothing behind either
    net2 = make_net()
    net2.client.tracer = print
    assert made["Trace"] == 1 and net2.client._builder.trace is not None
    net2.client.tracer = None
    assert net2.client._trace is None and net2.client._builder.trace is None


def test_qlogdir_environment_and_config_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_dir, cfg_dir = tmp_path / "env", tmp_path / "cfg"
    monkeypatch.setenv("QLOGDIR", str(env_dir))
    net = make_net(client_kw={"qlog_dir": str(cfg_dir)})
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    net.client.close(0, "", net.now)
    run_to_end(net, c, s)
    odcid = net.client._handshake.original_dcid.hex()
    assert os.listdir(cfg_dir) == [f"{odcid}_client.sqlog"]  # Config wins over QLOGDIR
    assert os.listdir(env_dir) == [f"{odcid}_server.sqlog"]  # the server had no qlog_dir
    for d in (cfg_dir, env_dir):
        assert_valid(d / os.listdir(d)[0])


def test_first_initial_sealed_ahead_is_logged_when_sent(tmp_path: Path) -> None:
    """start_hello() seals the first Initial before connect(): it is logged at connect(),
    as packet 0, and the server logs receiving it."""
    kw = {"qlog_dir": str(tmp_path)}
    net = make_net(client_kw=kw, server_kw=kw, connect=False)
    net.client.start_hello(0.0)
    net.start()
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    net.client.close(0, "", net.now)
    run_to_end(net, c, s)
    traces = {name.split("_")[1]: read_qlog(tmp_path / name) for name in os.listdir(tmp_path)}
    first = traces["client.sqlog"].named("quic:packet_sent")[0]
    assert first.data["header"] == {"packet_type": "initial", "packet_number": 0}
    assert any(fr["frame_type"] == "crypto" for fr in first.data["frames"])
    assert match_packets(traces["client.sqlog"], traces["server.sqlog"]).missing == []


def test_callback_sees_every_event_type() -> None:
    """A scripted connection (handshake, transfer with loss, key update, active migration,
    a forged packet, close): the client's and server's tracers together see every event type
    of issue 17's list, with the draft's fields."""
    seen: dict[str, list[dict[str, Any]]] = {}

    def tracer(name: str, data: dict[str, Any]) -> None:
        seen.setdefault(name, []).append(data)

    kw = {"tracer": tracer}
    net, c, s = make_path_pair(client_kw=kw, server_kw=kw)
    assert isinstance(net, PathNet)
    connected(net, c, s)
    assert net.run_until(lambda: len(net.client._peer_cids.entries) == 4, c, s, timeout=2)
    net.up.spec.loss = 0.05
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(300_000), end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60)
    net.up.spec.loss = 0.0
    net.client.request_key_update()
    sid2 = net.client.open_stream()
    net.client.send_stream_data(sid2, bytes(20_000), end_stream=True)
    assert net.run_until(lambda: sid2 in s.finished, c, s, timeout=10)
    net.client_addrs[1] = ("10.0.0.2", 50000)
    net.client.probe_path(1, net.now)
    assert net.run_until(lambda: net.client.local_path == 1, c, s, timeout=10)
    forged = bytes([0x40]) + net.server.host_cid + os.urandom(40)  # fails authentication
    net.server.receive_datagram(forged, net.client_addrs[1], net.now, 0)
    net.client.close(7, "bye", net.now)
    run_to_end(net, c, s)
    assert set(seen) >= ALL_EVENTS, ALL_EVENTS - set(seen)
    # a few fields the draft requires, from the engine's values
    assert {d["initiator"] for d in seen["parameters_set"]} == {"local", "remote"}
    assert any(d.get("tls_cipher") for d in seen["parameters_set"])
    assert {d["chosen_alpn"]["string_value"] for d in seen["alpn_information"]} == {"hq-interop"}
    assert {d["chosen_version"] for d in seen["version_information"] if "chosen_version" in d} == {
        "00000001"
    }
    updates = [
        d for d in seen["key_updated"] if d.get("trigger") in ("local_update", "remote_update")
    ]
    assert {d["trigger"] for d in updates} == {"local_update", "remote_update"}  # both ends
    assert {d["key_type"] for d in seen["key_discarded"]} >= {
        "client_initial_secret",
        "server_handshake_secret",
    }
    states = {d["new"] for d in seen["congestion_state_updated"]}
    assert {"slow_start", "recovery"} <= states
    assert {d["new"] for d in seen["migration_state_updated"]} >= {
        "probing_started",
        "probing_successful",
        "migration_complete",
    }
    triggers = {d["trigger"] for d in seen["packet_dropped"]}
    assert "decryption_failure" in triggers and triggers <= PACKET_DROP_TRIGGERS
    closed = seen["connection_closed"]
    assert {(d["initiator"], d["trigger"]) for d in closed} == {
        ("local", "application"),
        ("remote", "application"),
    }
    assert all(d["error_code"] == 7 and d["reason"] == "bye" for d in closed)
    stream_states = {
        (d["stream_id"], d["stream_side"], d["new"]) for d in seen["stream_state_updated"]
    }
    assert {(sid, "sending", "open"), (sid, "sending", "data_sent")} <= stream_states
    assert (sid, "receiving", "size_known") in stream_states
    metrics = seen["recovery_metrics_updated"]
    assert all({"congestion_window", "bytes_in_flight", "smoothed_rtt"} <= set(m) for m in metrics)
    assert any("ssthresh" in m for m in metrics) and any("pacing_rate" in m for m in metrics)
    assert any("rtt_variance" in m and "latest_rtt" in m and "min_rtt" in m for m in metrics)


def test_endpoint_drops_go_to_its_tracer() -> None:
    """The sans-IO endpoint tells its tracer of datagrams no connection takes."""
    made: list[Connection] = []

    def accept(data: bytes, addr: Any, now: float, verdict: Any) -> Connection | None:
        return None

    endpoint: Endpoint[Connection] = Endpoint(accept=accept)
    seen: list[dict[str, Any]] = []
    endpoint.tracer = lambda name, data: seen.append({"name": name, **data})
    addr = ("192.0.2.1", 4433)
    endpoint.route(bytes([0x40]) + os.urandom(30), addr, 0.0)  # short header, unknown CID
    vn = bytes([0xC0]) + b"\x0a\x0a\x0a\x0a" + bytes([8]) + os.urandom(8) + bytes([8])
    endpoint.route(vn + os.urandom(8) + bytes(1200), addr, 0.0)  # unknown version: answered
    small = encode_long_header(PacketType.INITIAL, 1, os.urandom(8), b"", b"", 100, 0, 4)
    endpoint.route(small + bytes(100), addr, 0.0)  # an Initial in a datagram under 1200
    assert made == []
    assert [d["trigger"] for d in seen] == ["connection_unknown", "unsupported", "rejected"]
    assert all(d["name"] == "packet_dropped" for d in seen)
    assert seen[0]["header"] == {"packet_type": "1RTT"} and seen[0]["raw"]["length"] == 31
    assert endpoint.datagrams_dropped == 2  # (the Version Negotiation answer is no drop)


def test_traced_connections_end_without_reference_cycles(tmp_path: Path) -> None:
    """The trace and the parts it hooks into refer to each other only until the end: a
    closed, traced connection is freed by reference counting alone."""

    def run() -> None:
        kw = {"qlog_dir": str(tmp_path), "tracer": lambda name, data: None}
        net = make_net(link=LinkSpec(delay=0.01), client_kw=kw, server_kw=kw)
        c, s = connected(net)
        sid = net.client.open_stream()
        net.client.send_stream_data(sid, bytes(50_000), end_stream=True)
        assert net.run_until(lambda: sid in s.finished, c, s, timeout=10)
        net.client.close(0, "", net.now)
        run_to_end(net, c, s)
        assert net.client._builder.trace is None and net.client._recovery.on_metrics is None

    with cyclic_garbage() as leaked:
        run()
    assert leaked == []
    assert len(os.listdir(tmp_path)) == 2
