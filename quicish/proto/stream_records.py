"""The answers to the records a :class:`StreamManager` writes for the frames it sends
(acknowledged, lost): what ``RecordTable.register_owner`` takes, one mapping for every
connection."""

from __future__ import annotations

from .records import (
    DataBlockedRecord,
    MaxDataRecord,
    MaxStreamDataRecord,
    MaxStreamsRecord,
    OwnerHandlers,
    ResetStreamRecord,
    StopSendingRecord,
    StreamDataBlockedRecord,
    StreamRecord,
    StreamsBlockedRecord,
)
from .stream_manager import StreamManager


def _stream_acked(m: StreamManager, rec: StreamRecord) -> None:
    stream_id, offset, length, fin = rec
    stream = m.get(stream_id)
    if stream is not None and stream.send is not None:
        stream.send.on_acked(offset, length, fin)


def _stream_lost(m: StreamManager, rec: StreamRecord) -> None:
    stream_id, offset, length, fin = rec
    m.bytes_lost += length
    stream = m.get(stream_id)
    if stream is not None and stream.send is not None:
        stream.send.on_lost(offset, length, fin)


def _reset_acked(m: StreamManager, rec: ResetStreamRecord) -> None:
    stream = m.get(rec.stream_id)
    if stream is not None and stream.send is not None:
        stream.send.on_reset_acked()


def _reset_lost(m: StreamManager, rec: ResetStreamRecord) -> None:
    stream = m.get(rec.stream_id)
    if stream is not None and stream.send is not None:
        stream.send.on_reset_lost()


def _stop_sending_lost(m: StreamManager, rec: StopSendingRecord) -> None:
    stream = m.get(rec.stream_id)
    if stream is not None and stream.recv is not None:
        stream.recv.on_stop_sending_lost()


def _max_data_lost(m: StreamManager, rec: MaxDataRecord) -> None:
    window = m.recv_window
    window.on_update_lost(window.limit if rec.limit is None else rec.limit)


def _max_stream_data_lost(m: StreamManager, rec: MaxStreamDataRecord) -> None:
    stream = m.get(rec.stream_id)
    if stream is not None and stream.recv is not None:
        stream.recv.on_max_stream_data_lost(rec.limit)


def _stream_data_blocked_lost(m: StreamManager, rec: StreamDataBlockedRecord) -> None:
    stream = m.get(rec.stream_id)
    if stream is not None and stream.send is not None:
        stream.send.on_blocked_lost(rec.limit)


RECORD_HANDLERS: OwnerHandlers = {
    StreamRecord: (_stream_acked, _stream_lost),
    ResetStreamRecord: (_reset_acked, _reset_lost),
    StopSendingRecord: (None, _stop_sending_lost),
    MaxDataRecord: (None, _max_data_lost),
    MaxStreamDataRecord: (None, _max_stream_data_lost),
    MaxStreamsRecord: (None, lambda m, r: m.on_max_streams_lost(r.bidi, r.limit)),
    DataBlockedRecord: (None, lambda m, r: m.send_credit.on_blocked_lost(r.limit)),
    StreamDataBlockedRecord: (None, _stream_data_blocked_lost),
    StreamsBlockedRecord: (None, lambda m, r: m.on_streams_blocked_lost(r.bidi, r.limit)),
}
