"""The sans-IO endpoint: what one UDP socket's datagrams meet before any connection.

It routes each datagram by destination connection ID to the connection that issued it,
answers unknown versions with Version Negotiation (RFC 9000 6.1), checks a new client's
first Initial (RFC 9000 7.2, 14.1), asks the :class:`~quicish.proto.stateless.
StatelessResponder` (Retry, INVALID_TOKEN, stateless reset) and the
:class:`~quicish.proto.admission.Admission` (half-open cap, automatic Retry) about it, and
has the driver's ``accept`` make the connection. Stateless answers wait in :attr:`outbox`
for the driver to send. No I/O and no clock: time comes in as ``now``.

The connections it routes to are whatever the driver makes (the asyncio layer's
``QuicConnection``, or a sans-IO :class:`~quicish.proto.connection.Connection` in tests):
anything with the :class:`Routable` interface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

from ..errors import DecodeError
from ..wire.packet import (
    SUPPORTED_VERSIONS,
    PacketType,
    encode_version_negotiation,
    parse_header,
)
from .admission import Admission
from .stateless import InitialVerdict, StatelessResponder

Address = tuple[str, int]

logger = logging.getLogger("quicish")

MIN_INITIAL_DCID = 8  # RFC 9000 7.2: a client's first Initial DCID is at least 8 bytes
MIN_FIRST_DATAGRAM = 1200  # RFC 9000 14.1: a client's first datagram is at least this big


class Routable(Hashable, Protocol):
    """What the endpoint needs of a connection it routes datagrams to."""

    @property
    def host_cid(self) -> bytes:
        """The connection ID it chose first (routed from its first datagram on)."""
        ...


C = TypeVar("C", bound=Routable)


class Endpoint(Generic[C]):
    """CID routing, Version Negotiation and Initial admission of one socket (sans-IO).

    A client's endpoint has no ``accept``: it routes to its own connections only, and a
    short-header datagram for an unknown CID goes to its connection (perhaps a stateless
    reset, which the connection checks)."""

    def __init__(
        self,
        *,
        accept: Callable[[bytes, Address, float, InitialVerdict | None], C | None] | None = None,
        cid_length: int = 8,
        stateless: StatelessResponder | None = None,
        admission: Admission | None = None,
        local_id: int = 0,
    ) -> None:
        # Server: makes a connection for a new client's Initial (``verdict``: what the
        # stateless layer learned of it) and feeds it that datagram; None when the datagram
        # held no valid packet.
        self._accept = accept
        #: The connection ``accept`` made for the datagram just routed (and fed it): the
        #: driver feeds every other routed datagram to its connection, and clears this.
        self.accepted: C | None = None
        #: Server: Retry, INVALID_TOKEN closes and stateless resets (RFC 9000 8.1, 10.3).
        self.stateless = stateless
        #: Server: counts half-open connections and decides on new ones.
        self.admission = admission
        #: The path id the connections know this socket by (active migration).
        self.local_id = local_id
        self.cid_length = cid_length
        self._by_cid: dict[bytes, C] = {}
        # The reverse, for forget(): a tuple per connection (a handful of CIDs, changed
        # rarely; a set of five is 730 bytes, a list 120, a tuple 80).
        self._cids_of: dict[C, tuple[bytes, ...]] = {}
        #: Stateless answers (Version Negotiation, Retry, INVALID_TOKEN, reset) to send.
        self.outbox: list[tuple[bytes, Address]] = []
        self.datagrams_dropped = 0
        #: ``tracer(name, data)`` told of each datagram dropped here (qlog
        #: ``packet_dropped`` data: trigger, size, packet type when known); None: off.
        self.tracer: Callable[[str, dict[str, Any]], None] | None = None

    # ---- routing table ---------------------------------------------------------------------
    def register(self, cid: bytes, conn: C) -> None:
        """Route datagrams for ``cid`` to ``conn`` (taking it from any other connection)."""
        old = self._by_cid.get(cid)
        if old is not None and old is not conn:
            self._cids_of[old] = _without(self._cids_of[old], cid)
        self._by_cid[cid] = conn
        cids = self._cids_of.get(conn, ())
        if cid not in cids:
            self._cids_of[conn] = (*cids, cid)

    def unregister(self, cid: bytes) -> None:
        conn = self._by_cid.pop(cid, None)
        if conn is not None:
            self._cids_of[conn] = _without(self._cids_of[conn], cid)

    def forget(self, conn: C) -> None:
        """``conn`` has ended: drop its CIDs (its own only: no scan of the table)."""
        by_cid = self._by_cid
        for cid in self._cids_of.pop(conn, ()):
            if by_cid.get(cid) is conn:
                del by_cid[cid]
        self.settled(conn)

    def settled(self, conn: C) -> None:
        """``conn``'s handshake completed or failed: it is no longer half-open."""
        if self.admission is not None:
            self.admission.settled(conn)

    def lookup(self, cid: bytes) -> C | None:
        """The connection that ``cid`` routes to, if any."""
        return self._by_cid.get(cid)

    @property
    def connections(self) -> set[C]:
        """Every connection with a routed CID."""
        return set(self._cids_of)

    def take_outbox(self) -> list[tuple[bytes, Address]]:
        """The stateless answers made since the last call, to send in order."""
        out, self.outbox = self.outbox, []
        return out

    # ---- receiving -------------------------------------------------------------------------
    def route(self, data: bytes, addr: Address, now: float) -> C | None:
        """The connection of one datagram, for the driver to feed it to; None when no
        connection takes it (dropped, or answered statelessly: see :attr:`outbox`). A new
        client's connection is made by ``accept``, which feeds it the datagram itself
        (:attr:`accepted`)."""
        if not data:
            return None
        long_header = data[0] & 0x80
        if not long_header:  # (the common case: a short header for a known CID)
            conn = self._by_cid.get(bytes(data[1 : 1 + self.cid_length]))
            if conn is not None:
                return conn
        try:
            if long_header:
                return self._route_long(data, addr, now)
            return self._unknown_short(data, addr)
        except Exception:  # e.g. MemoryError making a connection: drop this one
            logger.exception("dropped a datagram: internal error")
            self._drop("internal_error", data)
            return None

    def _route_long(self, data: bytes, addr: Address, now: float) -> C | None:
        try:
            header = parse_header(data, 0, short_dcid_len=self.cid_length)
        except DecodeError:
            self._drop("invalid", data)
            return None
        conn = self._by_cid.get(header.dcid)
        if conn is not None:
            return conn
        if self._accept is None:
            self._drop("connection_unknown", data, header.packet_type)
            return None
        if header.version not in SUPPORTED_VERSIONS:
            # RFC 9000 6.1: never answer a Version Negotiation packet (version 0), and
            # answer other versions only in a datagram big enough to be a first one.
            if header.version and len(data) >= MIN_FIRST_DATAGRAM:
                vn = encode_version_negotiation(header.scid, header.dcid, list(SUPPORTED_VERSIONS))
                self.outbox.append((vn, addr))
            else:
                self.datagrams_dropped += 1
            if self.tracer is not None:
                self._drop("unsupported", data, count=False)
            return None
        if (
            header.packet_type != PacketType.INITIAL
            or len(data) < MIN_FIRST_DATAGRAM
            or len(header.dcid) < MIN_INITIAL_DCID
        ):
            unknown = header.packet_type != PacketType.INITIAL
            self._drop("connection_unknown" if unknown else "rejected", data, header.packet_type)
            return None
        verdict = None
        if self.stateless is not None:
            verdict = self.stateless.check_initial(header, addr, now)
            if verdict.reply is not None:
                self.outbox.append((verdict.reply, addr))
            if not verdict.accept:
                if self.tracer is not None:
                    self._drop("rejected", data, header.packet_type, count=False)
                return None
        new = self._accept(data, addr, now, verdict)
        if new is None:  # e.g. an Initial that does not decrypt: no connection state
            self._drop("decryption_failure", data, header.packet_type)
            return None
        self.register(header.dcid, new)
        self.register(new.host_cid, new)
        self.accepted = new
        if self.admission is not None:
            self.admission.opened(new)  # half-open until settled()
        return new

    def _unknown_short(self, data: bytes, addr: Address) -> C | None:
        """A short-header datagram for a CID no connection has."""
        if self._accept is None and self._by_cid:
            # A client's socket: perhaps a stateless reset, which the connection checks.
            return next(iter(self._by_cid.values()))
        self._drop("connection_unknown", data, PacketType.ONE_RTT)
        if self.stateless is not None:
            reset = self.stateless.stateless_reset(data)
            if reset is not None:
                self.outbox.append((reset, addr))
        return None

    def _drop(
        self, trigger: str, data: bytes, ptype: PacketType | None = None, count: bool = True
    ) -> None:
        """A datagram no connection takes: counted (unless answered), and traced."""
        if count:
            self.datagrams_dropped += 1
        if self.tracer is not None:
            out: dict[str, Any] = {"trigger": trigger, "raw": {"length": len(data)}}
            if ptype is not None and ptype in _QLOG_TYPES:
                out["header"] = {"packet_type": _QLOG_TYPES[ptype]}
            self.tracer("packet_dropped", out)


_QLOG_TYPES = {
    PacketType.INITIAL: "initial",
    PacketType.ZERO_RTT: "0RTT",
    PacketType.HANDSHAKE: "handshake",
    PacketType.ONE_RTT: "1RTT",
    PacketType.RETRY: "retry",
    PacketType.VERSION_NEGOTIATION: "version_negotiation",
}


def _without(cids: tuple[bytes, ...], cid: bytes) -> tuple[bytes, ...]:
    return tuple(c for c in cids if c != cid) if cid in cids else cids
