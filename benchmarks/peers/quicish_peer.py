"""quicish benchmark peer: ``python quicish_peer.py server|client ...``.

quicish's default datagram size (path MTU discovery from 1200 up to 1452;
``QUICISH_MAX_DATAGRAM_SIZE`` sets another ceiling, 1200 fixes the size), AES-128-GCM only,
quicish's default windows and congestion control (``QUICISH_CC`` names another: "bbr",
"newreno"); uvloop when installed, as quicish.aio.api.run. ``QUICISH_CC_TRACE=<file>``: the
server's BBR writes its state there every 50 ms (JSON lines; for diagnosing fairness runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import common


class QuicishSession:
    multiplexed = True

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def open_stream(self) -> tuple[Any, Any]:
        return await self.conn.open_stream()

    def end_stream(self, writer: Any) -> None:
        writer.write_eof()

    async def close(self) -> None:
        self.conn.close()
        await common.close_within(self.conn.wait_closed())


async def dial(host: str, port: int) -> QuicishSession:
    import quicish
    from quicish.aio import api

    config = quicish.Config(
        alpn=[common.ALPN], verify=False, cipher_suites=["aes128"], **_cc_choice()
    )
    conn = await common.connect_within(api.connect(host, port, config=config), "handshake")
    return QuicishSession(conn)


async def serve(host: str, port: int, handler: common.Handler, args: argparse.Namespace) -> int:
    import quicish
    from quicish.aio import api

    cert, key = common.ensure_cert(args)
    config = quicish.Config(
        alpn=[common.ALPN],
        certificate_chain=cert,
        private_key=key,
        cipher_suites=["aes128"],
        **_cc_choice(),
    )
    trace = os.environ.get("QUICISH_CC_TRACE")
    if trace:
        _trace_bbr(trace)
    server = await api.serve(host, port, config=config, on_stream=handler)
    _keep.append(server)
    return int(server.address[1])


def _cc_choice() -> dict[str, Any]:
    """``congestion_control`` from ``QUICISH_CC``, ``max_datagram_size`` from
    ``QUICISH_MAX_DATAGRAM_SIZE`` and ``idle_timeout`` from ``common.idle_timeout()`` when
    set (else the Config defaults)."""
    name = os.environ.get("QUICISH_CC")
    choice: dict[str, Any] = {"congestion_control": name} if name else {}
    size = os.environ.get("QUICISH_MAX_DATAGRAM_SIZE")
    if size:
        choice["max_datagram_size"] = int(size)
    idle = common.idle_timeout()
    if idle is not None:
        choice["idle_timeout"] = idle
    return choice


def _trace_bbr(path: str) -> None:
    """Every BBR of this process appends its state to ``path`` at most every 50 ms of its
    ACKs (one JSON object a line)."""
    import json
    import math

    from quicish.proto.congestion.bbr import Bbr

    out = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    _keep.append(out)
    acked = Bbr.on_packets_acked
    last: dict[int, float] = {}

    def num(x: float) -> float | None:
        return None if math.isinf(x) else round(x, 6)

    def on_packets_acked(cc: Bbr, acked_pkts: Any, now: float, rtt: Any, *rest: Any) -> None:
        acked(cc, acked_pkts, now, rtt, *rest)
        if now - last.get(id(cc), -1.0) < 0.05:
            return
        last[id(cc)] = now
        row = {
            "t": round(now, 4), "cc": id(cc) % 10000, "state": cc.state_name, "cwnd": cc.cwnd,
            "pacing": num(cc.pacing_rate or 0.0), "max_bw": num(cc.max_bw), "bw_lo": num(cc.bw_lo),
            "hi": num(cc.inflight_hi), "lo": num(cc.inflight_lo), "min_rtt": num(cc.min_rtt),
            "rtt": num(rtt.latest_rtt), "competing": cc.competing, "cycle": cc.cycle_count,
            "queued_cycle": cc._queued_cycle, "path_loss": num(cc.path_loss_rate),
            "send_loss": num(cc.send_loss_rate), "lost": cc.sampler.lost,
            "delivered": cc.sampler.delivered, "events": cc.congestion_events,
        }  # fmt: skip
        out.write(json.dumps(row) + "\n")

    Bbr.on_packets_acked = on_packets_acked  # type: ignore[method-assign]


_keep: list[Any] = []

if __name__ == "__main__":
    sys.exit(common.main("quicish", dial, serve))
