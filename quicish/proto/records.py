"""What a sent packet carried, and what its acknowledgement or loss does.

A sent packet keeps one record per frame that needs an answer: a NamedTuple whose type says
which frame it was. Acknowledgement frees what the frame held, loss queues it again (never
the packet itself: packet numbers are not reused). The owner of each record type registers
the two answers in the connection's :class:`RecordTable`: the stream manager its stream and
flow-control records, the CID tables NEW_CONNECTION_ID and RETIRE_CONNECTION_ID, the packet
number spaces CRYPTO and ACK, the packet builder HANDSHAKE_DONE and MTU probes, the
connection PING.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from .congestion.delivery_rate import RateStamp

Record = tuple[Any, ...]  # any of the NamedTuples below
R = TypeVar("R", bound=tuple[Any, ...])
#: A record type's answers: (on acknowledgement, on loss), either None for nothing to do.
Handlers = tuple[Callable[[Any], None] | None, Callable[[Any], None] | None]

#: ``new_record(StreamRecord, (stream_id, offset, length, fin))`` is
#: ``StreamRecord(stream_id, offset, length, fin)`` without the NamedTuple's Python-level
#: ``__new__`` (about 3x faster): for the records made for every packet sent.
new_record = tuple.__new__


# ---- the records ----------------------------------------------------------------------------
class AckRecord(NamedTuple):
    """An ACK frame: once acknowledged, ``space`` stops re-acknowledging up to ``largest``."""

    space: int
    largest: int


class CryptoRecord(NamedTuple):
    space: int
    offset: int
    length: int


class StreamRecord(NamedTuple):
    stream_id: int
    offset: int
    length: int
    fin: bool


class PingRecord(NamedTuple):
    """PING: nothing to do either way (the packet was ack-eliciting, that is all)."""


class HandshakeDoneRecord(NamedTuple):
    pass


class MtuProbeRecord(NamedTuple):
    """A path MTU probe (PING and PADDING) of ``size`` bytes (``pmtud.py``)."""

    size: int


class MaxDataRecord(NamedTuple):
    limit: int | None = None  # None: whatever the window is when it is re-sent


class MaxStreamDataRecord(NamedTuple):
    stream_id: int
    limit: int | None = None


class MaxStreamsRecord(NamedTuple):
    bidi: bool
    limit: int | None = None


class DataBlockedRecord(NamedTuple):
    limit: int


class StreamDataBlockedRecord(NamedTuple):
    stream_id: int
    limit: int


class StreamsBlockedRecord(NamedTuple):
    bidi: bool
    limit: int


class ResetStreamRecord(NamedTuple):
    stream_id: int


class StopSendingRecord(NamedTuple):
    stream_id: int


class NewConnectionIdRecord(NamedTuple):
    sequence: int


class RetireConnectionIdRecord(NamedTuple):
    sequence: int


PING = PingRecord()
HANDSHAKE_DONE = HandshakeDoneRecord()


# ---- the dispatch table -----------------------------------------------------------------------
class UnknownRecordError(TypeError):
    """A record whose type nobody registered (a programming error, never the peer's)."""


_ACKED = itemgetter(0)  # (acked, lost) -> acked
_LOST = itemgetter(1)


class RecordTable:
    """Per record type, what its acknowledgement and its loss do.

    ``register(kind, acked=..., lost=...)`` once per type (None: nothing to do);
    ``on_acked(records)`` / ``on_lost(records)`` run the handlers of a packet's records in
    order. A record of an unregistered type raises :class:`UnknownRecordError`.
    """

    __slots__ = ("_acked", "_lost")

    def __init__(self) -> None:
        self._acked: dict[type, Callable[[Any], None] | None] = {}
        self._lost: dict[type, Callable[[Any], None] | None] = {}

    def register(
        self,
        kind: type[R],
        acked: Callable[[R], None] | None = None,
        lost: Callable[[R], None] | None = None,
    ) -> None:
        """Make ``acked``/``lost`` the answers to records of type ``kind``; each type has
        one owner (registering it twice is a ValueError)."""
        if kind in self._acked:
            raise ValueError(f"{kind.__name__} is registered already")
        self._acked[kind] = acked
        self._lost[kind] = lost

    def register_all(self, handlers: Mapping[type, Handlers]) -> None:
        """``register`` for several types at once, ``{kind: (acked, lost)}``: what an owner
        of many types calls (once per connection, so once per handshake: the dictionaries
        are filled by C loops, not Python ones)."""
        acked, lost = self._acked, self._lost
        if not acked.keys().isdisjoint(handlers):
            taken = ", ".join(k.__name__ for k in handlers if k in acked)
            raise ValueError(f"{taken} is registered already")
        answers = handlers.values()
        acked.update(zip(handlers, map(_ACKED, answers), strict=True))
        lost.update(zip(handlers, map(_LOST, answers), strict=True))

    def __contains__(self, kind: object) -> bool:
        return kind in self._acked

    def release(self) -> None:
        """The connection is over: drop the handlers (they refer back to their owners, so
        keeping them would leave reference cycles); records are then accepted and ignored."""
        for handlers in (self._acked, self._lost):
            for kind in handlers:
                handlers[kind] = None

    def on_acked(self, records: Iterable[Record]) -> None:
        """The packet holding ``records`` was acknowledged."""
        _dispatch(self._acked, records)

    def on_packets_acked(self, packets: Iterable[SentPacket]) -> None:
        """``packets`` were acknowledged: ``on_acked`` for each one's records (one call
        per ACK frame, not per packet: this runs for every packet a bulk sender sends).
        Packets in a row that each carried one STREAM frame, the next one's data right
        after the last one's on the same stream, are one ``StreamRecord`` of the whole
        run for the handler (the same bytes acknowledged, one call instead of one per
        packet: a bulk transfer's case)."""
        handlers = self._acked
        sid = start = stop = -1  # the run of STREAM records not yet handed over
        fin = False
        for pkt in packets:  # (_dispatch inlined: once per packet acknowledged)
            frames = pkt.frames
            if len(frames) == 1 and type(rec := frames[0]) is StreamRecord:
                if rec[0] == sid and rec[1] == stop and not fin:
                    stop += rec[2]
                    fin = rec[3]
                    continue
                if sid >= 0:
                    _acked_run(handlers, sid, start, stop, fin)
                sid, start, fin = rec[0], rec[1], rec[3]
                stop = start + rec[2]
                continue
            if sid >= 0:
                _acked_run(handlers, sid, start, stop, fin)
                sid = -1
            for rec in frames:
                try:
                    handler = handlers[type(rec)]
                except KeyError:
                    raise _unknown(rec) from None
                if handler is not None:
                    handler(rec)
        if sid >= 0:
            _acked_run(handlers, sid, start, stop, fin)

    def on_lost(self, records: Iterable[Record]) -> None:
        """The packet holding ``records`` was declared lost."""
        _dispatch(self._lost, records)


def _acked_run(
    handlers: dict[type, Callable[[Any], None] | None], sid: int, start: int, stop: int, fin: bool
) -> None:
    """A run of STREAM records acknowledged together, as one record of its whole range."""
    _dispatch(handlers, (new_record(StreamRecord, (sid, start, stop - start, fin)),))


def _dispatch(
    handlers: dict[type, Callable[[Any], None] | None], records: Iterable[Record]
) -> None:
    """Each record to its kind's handler (None: nothing to do)."""
    for rec in records:
        try:
            handler = handlers[type(rec)]
        except KeyError:
            raise _unknown(rec) from None
        if handler is not None:
            handler(rec)


def _unknown(rec: Record) -> UnknownRecordError:
    return UnknownRecordError(f"no handlers registered for {type(rec).__name__} records")


# ---- sent packets -----------------------------------------------------------------------------
class SentPacket:
    """One sent packet as loss recovery tracks it; ``frames`` holds its records (recovery
    does not look at them: the connection hands them to its :class:`RecordTable`)."""

    __slots__ = (
        "ack_eliciting",
        "frames",
        "in_flight",
        "pn",
        "rate_stamp",
        "sent_time",
        "size",
        "space",
    )
    # ``rate_stamp`` is set only by a controller that samples delivery rates (BBR), at send
    # time, and left unset otherwise (read it with getattr): no cost for the others.
    rate_stamp: RateStamp | None

    def __init__(
        self,
        pn: int,
        sent_time: float,
        size: int,
        ack_eliciting: bool,
        in_flight: bool,
        space: int,
        frames: list[Record] | None = None,
    ) -> None:
        self.pn = pn
        self.sent_time = sent_time
        self.size = size
        self.ack_eliciting = ack_eliciting
        self.in_flight = in_flight
        self.space = space
        self.frames: list[Record] = [] if frames is None else frames

    def __repr__(self) -> str:
        return (
            f"SentPacket(pn={self.pn}, space={self.space}, sent_time={self.sent_time}, "
            f"size={self.size}, ack_eliciting={self.ack_eliciting}, in_flight={self.in_flight})"
        )
