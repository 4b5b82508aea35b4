"""The connection's event queue: order kept across the compactions of its list (a driver
that reads part of the queue at a time; received DATAGRAMs dropped beyond the bound)."""

from __future__ import annotations

from quicish.proto import events as ev
from quicish.proto.event_queue import DATAGRAM_OVERHEAD, EventQueue
from quicish.proto.stats import ConnectionStats


def _read(queue: EventQueue, count: int) -> list[ev.Event]:
    out: list[ev.Event] = []
    for _ in range(count):
        event = queue.next()
        assert event is not None
        out.append(event)
    return out


def test_order_and_length_survive_compaction_while_reading_part_of_the_queue() -> None:
    queue = EventQueue(1 << 20, ConnectionStats())
    sent: list[ev.Event] = [ev.StreamDataAvailable(i) for i in range(200)]
    for event in sent[:150]:
        queue.append(event)
    got = _read(queue, 120)  # past the read position at which the list is compacted
    assert len(queue) == 30
    for event in sent[150:]:
        queue.append(event)  # (the bound append still feeds the compacted list)
    got += _read(queue, 80)
    assert got == sent and len(queue) == 0 and queue.next() is None
    queue.append(sent[0])
    assert len(queue) == 1 and queue.next() == sent[0]


def test_dropped_datagrams_leave_no_slots_and_the_rest_keeps_its_order() -> None:
    stats = ConnectionStats()
    queue = EventQueue(10 * (DATAGRAM_OVERHEAD + 1), stats)
    first: list[ev.Event] = [ev.StreamDataAvailable(i) for i in range(10)]
    for event in first:
        queue.append(event)
    assert _read(queue, 4) == first[:4]
    for i in range(100):  # 90 dropped: their slots are removed once more than 64 are stale
        queue.append_datagram(bytes([i]))
    queue.append(ev.HandshakeConfirmed())
    assert stats.datagrams_dropped == 90
    rest: list[ev.Event] = []
    while (got := queue.next()) is not None:
        rest.append(got)
    assert len(rest) == 17  # (the slots of dropped datagrams give no event)
    assert rest[:6] == first[4:]
    assert rest[6:16] == [ev.DatagramReceived(bytes([i])) for i in range(90, 100)]
    assert rest[16] == ev.HandshakeConfirmed() and len(queue) == 0
