"""The bulk paths of the trace (one tuple per packet for the qlog writer: the lean
builder's ``Trace.stream_sent`` and the receive path's lone STREAM frame, in C with
``QlogTap`` or in Python) log exactly what the general path logs: the same transfer, on the
same seeded network, gives the same events with them and without them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pairs import Peer, Sender, connected, make_net

import quicish.proto.trace as trace_module
from quicish.native import CRYPTO_ACCELERATED, QlogTap
from quicish.proto.lean_receive import LeanReceiver
from quicish.proto.records import StreamRecord
from quicish.proto.stream_burst import StreamBurst
from quicish.proto.trace import Trace
from quicish.qlog import assert_valid, check_packet_numbers
from quicish.qlog.writer import QlogWriter
from quicish.simlink import LinkSpec


def transfer(directory: Path) -> dict[str, list[tuple[str, float, Any]]]:
    """Both ends' 1-RTT qlog events, (name, time, data), of a seeded lossy transfer both
    ways."""
    kw = {"qlog_dir": str(directory), "max_datagram_size": 1200}  # (the counts below)
    net = make_net(link=LinkSpec(delay=0.01, loss=0.03), seed=5, client_kw=kw, server_kw=kw)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(300_000), end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60)
    net.server.send_stream_data(sid, bytes(100_000), end_stream=True)
    assert net.run_until(lambda: sid in c.finished, c, s, timeout=60)
    net.client.close()
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=60)
    out = {}
    for path in sorted(directory.glob("*.sqlog")):
        trace = assert_valid(path)
        assert not check_packet_numbers(trace)
        role = path.stem.rsplit("_", 1)[1]
        out[role] = [(ev.name, ev.time, ev.data) for ev in trace.events if one_rtt(ev)]
    return out


def one_rtt(event: Any) -> bool:
    """The packets of one STREAM frame and the stream states (the handshake's and the
    session ticket's CRYPTO lengths vary from run to run with the TLS randomness)."""
    if event.name in ("quic:packet_sent", "quic:packet_received"):
        frames = event.data.get("frames", ())
        return len(frames) == 1 and frames[0]["frame_type"] == "stream"
    return bool(event.name == "quic:stream_state_updated")


@pytest.mark.parametrize("tap", [True, False])
def test_bulk_paths_log_what_the_general_path_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tap: bool
) -> None:
    """``tap``: with the C core's QlogTap (else the trace's Python bulk paths)."""
    if tap and QlogTap is None:
        pytest.skip("no C core")
    if not tap:
        monkeypatch.setattr(trace_module, "QlogTap", None)
    calls = Counter[str]()
    original_stream_packet = QlogWriter.stream_packet

    def counting(self: QlogWriter, *args: Any) -> None:
        calls["stream_packet"] += 1
        original_stream_packet(self, *args)

    monkeypatch.setattr(QlogWriter, "stream_packet", counting)
    original_install = Trace.install

    def installing(self: Trace) -> Trace | None:
        installed = original_install(self)
        calls["tapped"] += "stream_sent" in self.__dict__
        return installed

    monkeypatch.setattr(Trace, "install", installing)
    fast = transfer(tmp_path / "fast")
    assert calls["stream_packet"] < 10  # the bulk paths were taken: no stream_packet calls
    assert (calls["tapped"] > 0) == tap

    def general_only(self: Trace) -> Trace | None:
        installed = original_install(self)
        self.bulk = None  # as when a second sink listens: every packet by the general path
        self._tap(None)
        return installed

    monkeypatch.setattr(Trace, "install", general_only)
    general = transfer(tmp_path / "general")
    assert calls["stream_packet"] > 400
    assert set(fast) == set(general) == {"client", "server"}
    for role in fast:
        assert len(fast[role]) == len(general[role]) > 300
        assert fast[role] == general[role]


def test_a_key_update_in_bulk_is_logged_by_both_files(tmp_path: Path) -> None:
    """The peer's key update arrives in bulk packets: the receive path's bulk case (the tap
    with the C core) hands the first packet of the new phase to the trace's poll."""
    kw = {"qlog_dir": str(tmp_path)}
    net = make_net(link=LinkSpec(delay=0.01), seed=3, client_kw=kw, server_kw=kw)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(200_000), end_stream=False)
    assert net.run_until(lambda: net.server.stats().bytes_received > 100_000, c, s, timeout=30)
    net.client.request_key_update()
    net.client.send_stream_data(sid, bytes(200_000), end_stream=True)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=30)
    net.client.close()
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=30)
    triggers = {}
    for path in tmp_path.glob("*.sqlog"):
        trace = assert_valid(path)
        assert not check_packet_numbers(trace)
        triggers[path.stem.rsplit("_", 1)[1]] = {
            ev.data.get("trigger") for ev in trace.events if ev.name == "quic:key_updated"
        }
    assert "local_update" in triggers["client"] and "remote_update" in triggers["server"]


def test_the_trace_time_includes_the_taps_last_packet(tmp_path: Path) -> None:
    """The C tap keeps its packets' time itself (no attribute of the trace set per packet):
    the trace's ``now``, and so an ``aborted`` close logged at the end, is that time."""
    if QlogTap is None:
        pytest.skip("no C core")
    kw = {"qlog_dir": str(tmp_path)}
    net = make_net(seed=2, client_kw=kw, server_kw=kw)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    sid = net.client.open_stream()
    net.client.send_stream_data(sid, bytes(200_000), end_stream=False)
    assert net.run_until(lambda: len(s.data.get(sid, b"")) >= 200_000, c, s, timeout=60)
    trace = net.client._trace
    assert trace is not None and trace._tapped is not None
    tap_now = trace._tapped.now
    assert tap_now is not None and trace.now == max(tap_now, trace._now) >= tap_now
    late = trace.now + 5.0  # a bulk packet after everything else: only the tap saw it
    trace.stream_sent(late, 10**6, 1252, b"", [StreamRecord(sid, 0, 1200, False)])
    assert trace._tapped.now == late == trace.now
    net.client.end_trace()  # (dropped without a close: logged as aborted at trace.now)
    (path,) = tmp_path.glob("*_client.sqlog")
    events = assert_valid(path).events
    assert events[-1].name == "quic:connection_closed"
    assert events[-1].data["trigger"] == "aborted"
    sent = [e.time for e in events if e.name == "quic:packet_sent"]
    assert len(sent) > 100 and events[-1].time == max(e.time for e in events) >= max(sent)


def _qlog_transfer(directory: Path, link: LinkSpec) -> dict[str, list[tuple[str, float, Any]]]:
    """Both ends' qlog events of a seeded one-way 2 MB transfer (Sender keeps the stream
    topped up, so bulk bursts are made), but for the handshake's packets of CRYPTO frames
    (their lengths vary from run to run with the TLS randomness)."""
    kw = {"qlog_dir": str(directory), "max_data": 16 << 20, "max_stream_data": 8 << 20}
    net = make_net(link=link, seed=7, client_kw=kw, server_kw=kw)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    data = bytes(range(256)) * (8 << 10)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, data)
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=120, hook=sender.pump)
    assert bytes(s.data[sid]) == data
    net.client.close()
    assert net.run_until(lambda: net.client.is_closed and net.server.is_closed, c, s, timeout=60)
    out = {}
    for path in sorted(directory.glob("*.sqlog")):
        trace = assert_valid(path)
        assert not check_packet_numbers(trace)
        role = path.stem.rsplit("_", 1)[1]
        out[role] = [(ev.name, ev.time, ev.data) for ev in trace.events if not _crypto(ev)]
    return out


def _crypto(event: Any) -> bool:
    frames = event.data.get("frames", ()) if event.name.startswith("quic:packet_") else ()
    return any(f["frame_type"] == "crypto" for f in frames) or event.name in (
        "quic:parameters_set",  # (the session ticket's lengths)
        "quic:packets_acked",  # (numbers of packets of CRYPTO frames among them)
    )


@pytest.mark.skipif(not CRYPTO_ACCELERATED, reason="the C bulk paths need the C cipher")
@pytest.mark.parametrize("tap", [True, False])
def test_the_c_bulk_paths_log_what_the_older_paths_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tap: bool
) -> None:
    """With a qlog file the C bulk paths are taken (send: ``StreamBurst.fill``, a burst of
    packets per C call; receive: ``LeanReceiver.take``), and the file is the same, event for
    event and time for time, as when they decline (the lean builder packet by packet, the
    connection's receive path): under loss, reordering and duplication, both ends; ``tap``:
    the trace's bulk cases by the C ``QlogTap`` (else by its Python methods)."""
    if tap and QlogTap is None:
        pytest.skip("no C qlog tap")
    if not tap:
        monkeypatch.setattr(trace_module, "QlogTap", None)
    link = LinkSpec(delay=0.01, loss=0.01, reorder=0.02, duplicate=0.01)
    counts = Counter[str]()
    fill, take = StreamBurst.fill, LeanReceiver.take
    on = [True]

    def counting_fill(self: StreamBurst, *args: Any) -> int:
        n = fill(self, *args) if on[0] else 0
        counts["burst"] += n
        return n

    def counting_take(self: LeanReceiver, *args: Any) -> bool:
        taken = on[0] and take(self, *args)
        counts["taken"] += taken
        return taken

    monkeypatch.setattr(StreamBurst, "fill", counting_fill)
    monkeypatch.setattr(LeanReceiver, "take", counting_take)
    fast = _qlog_transfer(tmp_path / "fast", link)
    assert counts["burst"] > 500 and counts["taken"] > 1000
    on[0] = False
    counts.clear()
    slow = _qlog_transfer(tmp_path / "slow", link)
    assert counts["burst"] == counts["taken"] == 0
    assert set(fast) == set(slow) == {"client", "server"}
    names = Counter(name for name, _, _ in fast["server"])
    assert names["quic:packet_received"] > 1000 and names["quic:packet_dropped"] > 5
    assert Counter(name for name, _, _ in fast["client"])["quic:packet_lost"] > 5
    for role in fast:
        assert len(fast[role]) == len(slow[role])
        assert fast[role] == slow[role]


@pytest.mark.skipif(not CRYPTO_ACCELERATED, reason="the C bulk paths need the C cipher")
def test_other_tracers_keep_the_c_bulk_paths_declining(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-memory tracer (``Config.tracer``) is given the packets by the older paths:
    the burst and the lean receive path decline every packet (the callback sink needs the
    payloads)."""
    counts = Counter[str]()
    fill, take = StreamBurst.fill, LeanReceiver.take

    def counting_fill(self: StreamBurst, *args: Any) -> int:
        n = fill(self, *args)
        counts["burst"] += n
        return n

    def counting_take(self: LeanReceiver, *args: Any) -> bool:
        taken = take(self, *args)
        counts["taken"] += taken
        return taken

    monkeypatch.setattr(StreamBurst, "fill", counting_fill)
    monkeypatch.setattr(LeanReceiver, "take", counting_take)
    events = Counter[str]()

    def tracer(name: str, data: dict[str, Any]) -> None:
        events[name] += 1

    kw = {"tracer": tracer, "max_data": 16 << 20, "max_stream_data": 8 << 20}
    net = make_net(seed=7, client_kw=kw, server_kw=kw)
    c, s = Peer(net.client), Peer(net.server)
    connected(net, c, s)
    sid = net.client.open_stream()
    sender = Sender(net.client, sid, bytes(1 << 20))
    assert net.run_until(lambda: sid in s.finished, c, s, timeout=60, hook=sender.pump)
    assert counts["burst"] == counts["taken"] == 0
    assert events["packet_sent"] > 500 and events["packet_received"] > 500
