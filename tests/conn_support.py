"""Shared helpers for sans-IO connection tests: certificates, configs, a connected pair."""

from __future__ import annotations

import functools
import gc
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quicish import Config
from quicish.proto import events as ev
from quicish.proto.connection import Connection
from quicish.proto.server_context import ServerContext
from quicish.simlink import LinkSpec, SimNetwork
from quicish.tls.certs import certificate_fingerprint, generate_self_signed, load_certificate_chain


@functools.lru_cache(maxsize=1)
def cert_files() -> tuple[str, str, str]:
    """(cert path, key path, SHA-256 pin) of a self-signed localhost certificate."""
    cert_pem, key_pem = generate_self_signed(("localhost", "127.0.0.1"))
    tmp = Path(tempfile.mkdtemp(prefix="quicish-test-"))
    (tmp / "cert.pem").write_bytes(cert_pem)
    (tmp / "key.pem").write_bytes(key_pem)
    pin = certificate_fingerprint(load_certificate_chain(tmp / "cert.pem")[0])
    return str(tmp / "cert.pem"), str(tmp / "key.pem"), pin


def server_config(**kw: object) -> Config:
    cert, key, _ = cert_files()
    kw.setdefault("certificate_chain", cert)
    kw.setdefault("private_key", key)
    return Config(**kw)  # type: ignore[arg-type]


def client_config(**kw: object) -> Config:
    _, _, pin = cert_files()
    kw.setdefault("pin", pin)
    kw.setdefault("server_name", "localhost")
    return Config(**kw)  # type: ignore[arg-type]


def make_pair(
    *,
    client_kw: dict[str, object] | None = None,
    server_kw: dict[str, object] | None = None,
    to_server: LinkSpec | None = None,
    to_client: LinkSpec | None = None,
    seed: int = 1,
    session_ticket: bytes | None = None,
    early_data: bool = False,
    context: ServerContext | None = None,
) -> SimNetwork:
    scfg = server_config(**(server_kw or {}))
    ctx = context or ServerContext.from_config(scfg)
    client = Connection(
        client_config(**(client_kw or {})),
        is_client=True,
        session_ticket=session_ticket,
        early_data=early_data,
    )
    server = Connection(scfg, is_client=False, server_context=ctx)
    net = SimNetwork(client, server, to_server=to_server, to_client=to_client, seed=seed)
    net.start()
    return net


class EventLog:
    """Collects events from a connection as a network runs."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.events: list[ev.Event] = []
        self.data: dict[int, bytearray] = {}
        self.finished: set[int] = set()

    def poll(self) -> None:
        while (event := self.conn.next_event()) is not None:
            self.events.append(event)
        for sid in list(self._readable()):
            data, fin = self.conn.read_stream(sid)
            self.data.setdefault(sid, bytearray()).extend(data)
            if fin:
                self.finished.add(sid)

    def _readable(self) -> set[int]:
        return {
            e.stream_id for e in self.events if isinstance(e, ev.StreamDataAvailable)
        } - self.finished

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@contextmanager
def cyclic_garbage() -> Iterator[list[str]]:
    """Collects, with the cycle collector off inside the block, the quicish objects that
    only the cycle collector could free (type names; the list fills when the block ends)."""
    found: list[str] = []
    gc.collect()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.extend(
            sorted(
                type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("quicish")
            )
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
