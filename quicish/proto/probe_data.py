"""What an application-space PTO probe repeats (RFC 9002 6.2.4): the data of the oldest
packets in flight, so a probe that gets through repairs a loss even while ACKs keep
vanishing. The packets stay in flight; whichever copy is acknowledged first frees the data."""

from __future__ import annotations

from collections.abc import Sequence

from .records import CryptoRecord, HandshakeDoneRecord, SentPacket, StreamRecord
from .send_stream import SendStream
from .stream_manager import StreamManager

SCAN_PACKETS = 64  # oldest in-flight packets a PTO probe looks through for data
REPEATED_PACKETS = 2  # a probe round is two packets


def repeat_oldest(
    in_flight: Sequence[SentPacket],
    streams: StreamManager,
    crypto: SendStream,
    handshake_done_owed: bool,
) -> tuple[int, bool]:
    """Queue again the data of the two oldest of ``in_flight`` (oldest first) that queue
    something not queued already: else every probe would repeat the first packet and its
    earlier probe copies (say a HANDSHAKE_DONE) while a lost response behind them waits for
    an ACK that keeps getting lost. ``handshake_done_owed``: a HANDSHAKE_DONE not yet
    acknowledged nor queued. Returns (STREAM bytes queued again, HANDSHAKE_DONE to queue)."""
    repeated = stream_bytes = 0
    handshake_done = False
    for pkt in in_flight[:SCAN_PACKETS]:
        if not pkt.ack_eliciting:
            continue
        live = False
        for rec in pkt.frames:
            if isinstance(rec, StreamRecord):
                if streams.repeat_for_probe(*rec):
                    stream_bytes += rec.length
                    live = True
            elif isinstance(rec, CryptoRecord):
                live |= crypto.repeat_for_probe(rec.offset, rec.length, False)
            elif isinstance(rec, HandshakeDoneRecord) and handshake_done_owed:
                handshake_done = live = True
                handshake_done_owed = False
        repeated += live
        if repeated == REPEATED_PACKETS:
            break
    return stream_bytes, handshake_done
