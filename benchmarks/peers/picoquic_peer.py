"""picoquic benchmark peer through aiopquic (Python >= 3.12, its own venv):
``python picoquic_peer.py server|client ...``, bulk download only.

The same wire protocol as the other peers (``GET /<n>\\r\\n`` on a stream, the server answers
``n`` bytes and FIN), so a picoquic client talks to a picoquic server through the impairment
relay exactly as the quicish and aioquic pairs do. ``--cc`` picks picoquic's controller
(aiopquic's default is "bbr1"; "cubic", "bbr" (v3), "newreno" ...). Needs ``--cert``/``--key``
for the server (this script does not make certificates). Prints one JSON line, as the others:
the server ``{"port": P}``, the client its result; on ``--timeout`` the client reports the
bytes it got by then (``"ok": false``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from typing import Any

from aiopquic.asyncio import QuicConnectionProtocol, connect, serve
from aiopquic.quic.configuration import QuicConfiguration
from aiopquic.quic.events import StreamDataReceived

ALPN = "hq-interop"
CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)


class ServerProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._requests: dict[int, bytes] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def quic_event_received(self, event: Any) -> None:
        if not isinstance(event, StreamDataReceived):
            return
        buf = self._requests.get(event.stream_id, b"") + event.data
        self._requests[event.stream_id] = buf
        if b"\n" in buf and buf.startswith(b"GET /"):
            self._requests[event.stream_id] = b"\xff"  # answered; ignore the rest
            size = int(buf[5 : buf.index(b"\n")].strip())
            task = asyncio.get_running_loop().create_task(self._answer(event.stream_id, size))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, sid: int, size: int) -> None:
        quic = self._quic
        sent = 0
        while sent < size:
            n = min(CHUNK, size - sent)
            sent += n
            await quic.send_stream_data_drained(sid, PATTERN[:n], sent >= size)


class ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.received = 0
        self.done = asyncio.Event()

    def quic_event_received(self, event: Any) -> None:
        if isinstance(event, StreamDataReceived):
            self.received += len(event.data)
            if event.end_stream:
                self.done.set()


def config(is_client: bool, cc: str) -> QuicConfiguration:
    cfg = QuicConfiguration(is_client=is_client, alpn_protocols=[ALPN])
    cfg.congestion_control_algorithm = cc
    if is_client:
        cfg.verify_mode = ssl.CERT_NONE
    return cfg


async def run_server(args: argparse.Namespace) -> None:
    cfg = config(False, args.cc)
    cfg.load_cert_chain(args.cert, args.key)
    port = args.port
    await serve(args.host, port, configuration=cfg, create_protocol=ServerProtocol)
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


async def run_client(args: argparse.Namespace) -> dict[str, Any]:
    cfg = config(True, args.cc)
    async with connect(
        args.host, args.port, configuration=cfg, create_protocol=ClientProtocol
    ) as proto:
        assert isinstance(proto, ClientProtocol)
        quic = proto._quic
        sid = quic.get_next_available_stream_id()
        start = time.perf_counter()
        quic.send_stream_data(sid, f"GET /{args.size}\r\n".encode(), True)
        try:
            await asyncio.wait_for(proto.done.wait(), args.timeout)
        except asyncio.TimeoutError:
            got = proto.received
            return {"ok": False, "error": f"timeout after {args.timeout:g} s", "bytes": got}
        elapsed = time.perf_counter() - start
        size = proto.received
        return {"ok": True, "bytes": size, "seconds": elapsed, "mbps": size * 8 / elapsed / 1e6}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--cc", default="cubic")
    p.add_argument("--size", type=int, default=10_000_000)
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    if args.role == "server":
        if not (args.cert and args.key and args.port):
            p.error("server needs --cert, --key and a fixed --port")
        asyncio.run(run_server(args))
        return 0
    print(json.dumps(asyncio.run(run_client(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
