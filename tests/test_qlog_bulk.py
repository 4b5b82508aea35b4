"""The bulk paths of the trace (one tuple per packet for the qlog writer: the lean
builder's ``Trace.stream_sent`` and the receive path's lone STREAM frame) log exactly what
the general path logs: the same transfer, on the same seeded network, gives the same
events with them and without them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pairs import Peer, connected, make_net

from quicish.proto.trace import Trace
from quicish.qlog import assert_valid, check_packet_numbers
from quicish.simlink import LinkSpec


def transfer(directory: Path) -> dict[str, list[tuple[str, float, Any]]]:
    """Both ends' 1-RTT qlog events, (name, time, data), of a seeded lossy transfer both
    ways."""
    kw = {"qlog_dir": str(directory)}
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
        check_packet_numbers(trace)
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


def test_bulk_paths_log_what_the_general_path_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"stream_sent": 0, "bulk": 0}
    original_stream_sent = Trace.stream_sent

    def counting(self: Trace, *args: Any) -> None:
        calls["stream_sent"] += 1
        if self.bulk is not None:
            calls["bulk"] += 1
        original_stream_sent(self, *args)

    monkeypatch.setattr(Trace, "stream_sent", counting)
    fast = transfer(tmp_path / "fast")
    assert calls["bulk"] > 200  # the bulk paths were taken

    original_install = Trace.install

    def general_only(self: Trace) -> Trace | None:
        installed = original_install(self)
        self.bulk = None  # as when a second sink listens: every packet by the general path
        return installed

    monkeypatch.setattr(Trace, "install", general_only)
    calls["bulk"] = 0
    general = transfer(tmp_path / "general")
    assert calls["bulk"] == 0 and calls["stream_sent"] > 400
    assert set(fast) == set(general) == {"client", "server"}
    for role in fast:
        assert len(fast[role]) == len(general[role]) > 300
        assert fast[role] == general[role]
