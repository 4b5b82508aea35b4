"""Sent-frame records and the acked/lost dispatch table their owners register in."""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import pytest

from quicish import Config
from quicish.proto import records
from quicish.proto.connection import Connection
from quicish.proto.records import (
    AckRecord,
    RecordTable,
    SentPacket,
    StreamRecord,
    UnknownRecordError,
    new_record,
)


class Foo(NamedTuple):
    value: int


class Bar(NamedTuple):
    name: str


def _table(log: list[tuple[str, Any]]) -> RecordTable:
    table = RecordTable()
    table.register(
        Foo, lambda rec: log.append(("foo acked", rec)), lambda rec: log.append(("foo lost", rec))
    )
    table.register(Bar, lost=lambda rec: log.append(("bar lost", rec)))
    return table


def test_registered_handlers_run_in_record_order() -> None:
    log: list[tuple[str, Any]] = []
    table = _table(log)
    table.on_acked([Foo(1), Bar("x"), Foo(2)])
    assert log == [("foo acked", Foo(1)), ("foo acked", Foo(2))]  # Bar: nothing when acked
    log.clear()
    table.on_lost([Foo(3), Bar("y")])
    assert log == [("foo lost", Foo(3)), ("bar lost", Bar("y"))]
    assert Foo in table and Bar in table and StreamRecord not in table


def test_packets_acked_runs_every_packets_records() -> None:
    log: list[tuple[str, Any]] = []
    table = _table(log)
    packets = [SentPacket(pn, 0.0, 100, True, True, 2, [Foo(pn), Bar("b")]) for pn in range(3)]
    table.on_packets_acked(packets)
    assert log == [("foo acked", Foo(0)), ("foo acked", Foo(1)), ("foo acked", Foo(2))]


def test_packets_acked_hands_a_run_of_stream_packets_over_as_one_record() -> None:
    """Packets in a row of one STREAM frame each, contiguous on one stream, reach the
    handler as one record of the run (the bulk case); anything else breaks the run, and
    the records keep their order."""
    log: list[tuple[str, Any]] = []
    table = _table(log)
    table.register(StreamRecord, lambda rec: log.append(("stream", rec)))

    def pkt(pn: int, *frames: Any) -> SentPacket:
        return SentPacket(pn, 0.0, 1200, True, True, 2, list(frames))

    table.on_packets_acked(
        [
            pkt(0, StreamRecord(4, 0, 100, False)),
            pkt(1, StreamRecord(4, 100, 100, False)),
            pkt(2, StreamRecord(4, 200, 50, True)),  # FIN: the run ends with it
            pkt(3, StreamRecord(4, 250, 0, True)),
            pkt(4, StreamRecord(8, 0, 10, False)),  # another stream
            pkt(5, StreamRecord(8, 20, 10, False)),  # a gap
            pkt(6, StreamRecord(8, 30, 10, False)),
            pkt(7, Foo(1)),  # another record: the run goes first
            pkt(8, StreamRecord(8, 40, 10, False)),
            pkt(9, StreamRecord(8, 50, 10, False), Foo(2)),  # two frames: not in a run
            pkt(10, StreamRecord(8, 60, 10, False)),
        ]
    )
    assert log == [
        ("stream", (4, 0, 250, True)),
        ("stream", (4, 250, 0, True)),
        ("stream", (8, 0, 10, False)),
        ("stream", (8, 20, 20, False)),
        ("foo acked", Foo(1)),
        ("stream", (8, 40, 10, False)),
        ("stream", (8, 50, 10, False)),
        ("foo acked", Foo(2)),
        ("stream", (8, 60, 10, False)),
    ]
    assert all(type(rec) is StreamRecord for kind, rec in log if kind == "stream")
    log.clear()
    table.on_packets_acked([pkt(0, StreamRecord(4, 0, 1, False))])
    assert log == [("stream", (4, 0, 1, False))]


def test_unknown_record_type_raises() -> None:
    table = _table([])
    with pytest.raises(UnknownRecordError, match="StreamRecord"):
        table.on_acked([StreamRecord(0, 0, 1, False)])
    with pytest.raises(UnknownRecordError):
        table.on_lost([Foo(1), (1, 2)])  # a plain tuple is no record either
    with pytest.raises(UnknownRecordError):
        table.on_packets_acked([SentPacket(0, 0.0, 1, True, True, 2, [AckRecord(2, 0)])])


def test_each_type_has_one_owner() -> None:
    table = _table([])
    with pytest.raises(ValueError, match="Foo"):
        table.register(Foo, lost=lambda rec: None)


def test_release_keeps_accepting_records_and_ignores_them() -> None:
    log: list[tuple[str, Any]] = []
    table = _table(log)
    table.release()
    table.on_acked([Foo(1)])
    table.on_lost([Foo(2), Bar("z")])
    assert log == []
    with pytest.raises(UnknownRecordError):
        table.on_lost([StreamRecord(0, 0, 1, False)])


def test_new_record_is_the_named_tuple() -> None:
    fast = new_record(StreamRecord, (4, 100, 50, True))
    assert type(fast) is StreamRecord
    assert fast == StreamRecord(4, 100, 50, True)
    assert (fast.stream_id, fast.offset, fast.length, fast.fin) == (4, 100, 50, True)


def test_connection_registers_every_record_type() -> None:
    """Each record type of records.py has an owner in a connection's table."""
    kinds = {
        cls
        for _, cls in inspect.getmembers(records, inspect.isclass)
        if issubclass(cls, tuple) and cls.__module__ == records.__name__
    }
    assert len(kinds) == 16
    conn = Connection(Config(verify=False), is_client=True)
    assert {kind for kind in kinds if kind in conn._records} == kinds
