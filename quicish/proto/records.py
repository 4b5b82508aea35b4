"""What a sent packet carried, and what its acknowledgement or loss does.

A sent packet keeps one record per frame that needs an answer: a NamedTuple whose type says
which frame it was. Acknowledgement frees what the frame held, loss queues it again (never
the packet itself: packet numbers are not reused). The owner of each record type registers
the two answers in the connection's :class:`RecordTable`: the stream manager its stream and
flow-control records (``stream_records.py``), the CID tables NEW_CONNECTION_ID and
RETIRE_CONNECTION_ID, the packet number spaces CRYPTO and ACK, the packet builder
HANDSHAKE_DONE, MTU probes and ACK_FREQUENCY, the connection PING. The answers are
module-level functions of (owner, record), one mapping per owner class: connections share
the dispatch dictionaries and keep only a tuple of their owners.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NamedTuple, TypeVar

from .congestion.delivery_rate import RateSegment

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


#: An owner's answers, ``{kind: (acked, lost)}`` of functions taking (owner, record): one
#: mapping per owner class, made once (the table keeps unbound functions, not bound methods).
OwnerHandlers = Mapping[
    type, tuple[Callable[[Any, Any], None] | None, Callable[[Any, Any], None] | None]
]
#: What a table keeps per record type: (function, index of its first argument in the owners),
#: None for nothing to do.
_Entry = tuple[Callable[[Any, Any], None], int] | None
_Answers = dict[type, _Entry]


def _call(handler: Callable[[Any], None], rec: Any) -> None:
    """A plain callable registered with ``register`` (its owner slot holds the callable)."""
    handler(rec)


class RecordTable:
    """Per record type, what its acknowledgement and its loss do.

    Owners register their answers once per table: ``register_owner(owner, handlers)`` with
    a mapping of functions taking (owner, record), the same mapping for every instance of
    the owner's class, or ``register(kind, acked=..., lost=...)`` with plain callables
    (None: nothing to do). Tables filled by the same sequence of ``register_owner`` calls
    share their dictionaries (a connection's table is a tuple of its owners, not two
    dictionaries of bound methods). ``on_acked(records)`` / ``on_lost(records)`` run the
    handlers of a packet's records in order; a record of an unregistered type raises
    :class:`UnknownRecordError`.
    """

    __slots__ = ("_acked", "_key", "_lost", "_owners")

    #: register_owner sequences seen (ids of the mappings, which live as long as their
    #: module) -> their (acked, lost) dictionaries and the sequence itself, shared by the
    #: tables filled alike (each keeps the shared sequence, not a tuple of ints of its own).
    _shared: ClassVar[dict[tuple[int, ...], tuple[_Answers, _Answers, tuple[int, ...]]]] = {
        (): ({}, {}, ())
    }
    _pinned: ClassVar[list[OwnerHandlers]] = []  # (their ids stay theirs)

    def __init__(self) -> None:
        self._acked, self._lost, _ = self._shared[()]
        self._owners: tuple[Any, ...] = ()
        self._key: tuple[int, ...] | None = ()  # None: dictionaries of its own

    def _check_free(self, kinds: Iterable[type]) -> None:
        taken = [k.__name__ for k in kinds if k in self._acked]
        if taken:
            raise ValueError(f"{', '.join(taken)} is registered already")

    def register_owner(self, owner: object, handlers: OwnerHandlers) -> None:
        """Make ``handlers`` (``{kind: (acked, lost)}``, functions of (owner, record), a
        mapping that lives as long as its module) the answers to those record types, with
        ``owner`` as their first argument; each type has one owner (a ValueError else)."""
        self._check_free(handlers)
        index = len(self._owners)
        self._owners += (owner,)
        key = self._key
        if key is not None:
            key += (id(handlers),)
            shared = self._shared.get(key)
            if shared is None:
                shared = self._shared[key] = (*self._extended(handlers, index), key)
                self._pinned.append(handlers)
            self._acked, self._lost, self._key = shared
            return
        self._acked, self._lost = self._extended(handlers, index)

    def _extended(self, handlers: OwnerHandlers, index: int) -> tuple[_Answers, _Answers]:
        acked, lost = dict(self._acked), dict(self._lost)
        for kind, (on_acked, on_lost) in handlers.items():
            acked[kind] = None if on_acked is None else (on_acked, index)
            lost[kind] = None if on_lost is None else (on_lost, index)
        return acked, lost

    def register(
        self,
        kind: type[R],
        acked: Callable[[R], None] | None = None,
        lost: Callable[[R], None] | None = None,
    ) -> None:
        """Make ``acked``/``lost`` the answers to records of type ``kind``; each type has
        one owner (registering it twice is a ValueError)."""
        self.register_all({kind: (acked, lost)})

    def register_all(self, handlers: Mapping[type, Handlers]) -> None:
        """``register`` for several types at once, ``{kind: (acked, lost)}`` (the table
        then has dictionaries of its own)."""
        self._check_free(handlers)
        acked, lost = dict(self._acked), dict(self._lost)
        owners = list(self._owners)
        for kind, answers in handlers.items():
            for table, handler in zip((acked, lost), answers, strict=True):
                if handler is None:
                    table[kind] = None
                else:
                    table[kind] = (_call, len(owners))
                    owners.append(handler)
        self._acked, self._lost, self._owners, self._key = acked, lost, tuple(owners), None

    def __contains__(self, kind: object) -> bool:
        return kind in self._acked

    def release(self) -> None:
        """The connection is over: drop the owners (the handlers refer back to them, so
        keeping them would leave reference cycles); records are then accepted and ignored."""
        self._owners = ()
        self._acked = self._lost = dict.fromkeys(self._acked)
        self._key = None

    def on_acked(self, records: Iterable[Record]) -> None:
        """The packet holding ``records`` was acknowledged."""
        handlers, owners = self._acked, self._owners
        for rec in records:  # (_dispatch inlined: once per packet of a request or answer)
            try:
                entry = handlers[type(rec)]
            except KeyError:
                raise _unknown(rec) from None
            if entry is not None:
                entry[0](owners[entry[1]], rec)

    def on_packets_acked(self, packets: Iterable[SentPacket]) -> None:
        """``packets`` were acknowledged: ``on_acked`` for each one's records (one call
        per ACK frame, not per packet: this runs for every packet a bulk sender sends).
        Packets in a row that each carried one STREAM frame, the next one's data right
        after the last one's on the same stream, are one ``StreamRecord`` of the whole
        run for the handler (the same bytes acknowledged, one call instead of one per
        packet: a bulk transfer's case)."""
        handlers, owners = self._acked, self._owners
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
                    _acked_run(handlers, owners, sid, start, stop, fin)
                sid, start, fin = rec[0], rec[1], rec[3]
                stop = start + rec[2]
                continue
            if sid >= 0:
                _acked_run(handlers, owners, sid, start, stop, fin)
                sid = -1
            for rec in frames:
                try:
                    entry = handlers[type(rec)]
                except KeyError:
                    raise _unknown(rec) from None
                if entry is not None:
                    entry[0](owners[entry[1]], rec)
        if sid >= 0:
            _acked_run(handlers, owners, sid, start, stop, fin)

    def on_lost(self, records: Iterable[Record]) -> None:
        """The packet holding ``records`` was declared lost."""
        _dispatch(self._lost, self._owners, records)


def _acked_run(
    handlers: _Answers, owners: tuple[Any, ...], sid: int, start: int, stop: int, fin: bool
) -> None:
    """A run of STREAM records acknowledged together, as one record of its whole range."""
    _dispatch(handlers, owners, (new_record(StreamRecord, (sid, start, stop - start, fin)),))


def _dispatch(handlers: _Answers, owners: tuple[Any, ...], records: Iterable[Record]) -> None:
    """Each record to its kind's handler (None: nothing to do)."""
    for rec in records:
        try:
            entry = handlers[type(rec)]
        except KeyError:
            raise _unknown(rec) from None
        if entry is not None:
            entry[0](owners[entry[1]], rec)


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
        "rate_index",
        "rate_stamp",
        "sent_time",
        "size",
        "space",
    )
    # ``rate_stamp`` and ``rate_index`` are set only by a controller that samples delivery
    # rates (BBR), at send time, and left unset otherwise (read it with getattr): no cost for
    # the others (delivery_rate.py).
    rate_stamp: RateSegment | None
    rate_index: int

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
