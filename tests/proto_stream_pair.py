"""Test helper: two StreamManagers joined by real frame encoding, with a virtual clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from quicish.proto import stream_records
from quicish.proto.records import RecordTable
from quicish.proto.stream_manager import StreamLimits, StreamManager
from quicish.wire import frames as F
from quicish.wire.buffer import Buffer


@dataclass
class Side:
    max_data: int = 1 << 20
    max_data_limit: int | None = None
    max_stream_data: int = 256 << 10
    max_stream_data_limit: int | None = None
    max_streams_bidi: int = 100
    max_streams_uni: int = 100
    send_buffer: int = 1 << 20

    def manager(self, is_client: bool) -> StreamManager:
        return StreamManager(
            is_client,
            local_max_data=self.max_data,
            max_data_limit=self.max_data_limit,
            local_max_stream_data=self.max_stream_data,
            max_stream_data_limit=self.max_stream_data_limit,
            local_max_streams_bidi=self.max_streams_bidi,
            local_max_streams_uni=self.max_streams_uni,
            send_buffer_size=self.send_buffer,
        )

    def limits(self) -> StreamLimits:
        return StreamLimits(
            self.max_data,
            self.max_stream_data,
            self.max_stream_data,
            self.max_stream_data,
            self.max_streams_bidi,
            self.max_streams_uni,
        )


def dispatch(dst: StreamManager, frame: Any) -> None:
    """Feed one decoded frame to ``dst`` the way a connection would."""
    if isinstance(frame, F.StreamFrame):
        dst.on_stream_frame(frame.stream_id, frame.offset, frame.data, frame.fin)
    elif isinstance(frame, F.ResetStreamFrame):
        dst.on_reset_stream(frame.stream_id, frame.error_code, frame.final_size)
    elif isinstance(frame, F.StopSendingFrame):
        dst.on_stop_sending(frame.stream_id, frame.error_code)
    elif isinstance(frame, F.MaxDataFrame):
        dst.on_max_data(frame.maximum)
    elif isinstance(frame, F.MaxStreamDataFrame):
        dst.on_max_stream_data(frame.stream_id, frame.maximum)
    elif isinstance(frame, F.MaxStreamsFrame):
        dst.on_max_streams(frame.bidi, frame.limit)
    elif isinstance(frame, F.StreamDataBlockedFrame):
        dst.on_stream_data_blocked(frame.stream_id, frame.limit)


def record_table(m: StreamManager) -> RecordTable:
    """A table holding the answers to ``m``'s records (a connection's holds more)."""
    table = RecordTable()
    table.register_owner(m, stream_records.RECORD_HANDLERS)
    return table


@dataclass
class Pair:
    """Client and server managers; ``step`` moves one packet each way."""

    client_side: Side = field(default_factory=Side)
    server_side: Side = field(default_factory=Side)
    room: int = 1200
    loss: float = 0.0
    seed: int = 1
    now: float = 0.0
    rtt: float = 0.05
    tick: float = 0.001

    def __post_init__(self) -> None:
        self.client = self.client_side.manager(True)
        self.server = self.server_side.manager(False)
        self.client.on_peer_parameters(self.server_side.limits())
        self.server.on_peer_parameters(self.client_side.limits())
        self.rng = random.Random(self.seed)
        self.sent_frames: list[Any] = []  # every frame decoded, both directions
        # What acknowledgement and loss of each side's records do, as in a connection.
        self.records = {id(self.client): record_table(self.client)}
        self.records[id(self.server)] = record_table(self.server)

    def packet(self, src: StreamManager, dst: StreamManager) -> bool:
        """Build one packet from ``src``; deliver (or lose) it; report the outcome."""
        buf = Buffer()
        records: list[tuple[Any, ...]] = []
        src.write_control_frames(buf, self.room, records, self.now, self.rtt)
        src.write_stream_frames(buf, self.room, records)
        if not buf.written:
            return False
        assert buf.written <= self.room
        if self.loss and self.rng.random() < self.loss:
            self.records[id(src)].on_lost(records)
            return True
        for frame in F.decode_frames(buf.data()):
            self.sent_frames.append(frame)
            dispatch(dst, frame)
        self.records[id(src)].on_acked(records)
        return True

    def step(self) -> bool:
        self.now += self.tick
        a = self.packet(self.client, self.server)
        b = self.packet(self.server, self.client)
        return a or b

    def run(self, max_steps: int = 100_000) -> int:
        """Step until neither side has anything to send; returns the steps taken."""
        for i in range(max_steps):
            if not self.step():
                return i
        raise AssertionError("no quiescence")


def frames_of(pair: Pair, kind: type) -> list[Any]:
    return [f for f in pair.sent_frames if isinstance(f, kind)]
