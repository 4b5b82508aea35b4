"""qlog for quicish: the event data model, a buffered JSON-SEQ writer, a reader and validator,
and the summary and plot tools (``python -m quicish.qlog``).

Follows draft-ietf-quic-qlog-main-schema-14 and draft-ietf-quic-qlog-quic-events-13; see
docs/qlog.md. Nothing here imports the engine: the connection calls the builders in
:mod:`quicish.qlog.events` / :mod:`quicish.qlog.frames` and hands their dicts to a
:class:`QlogWriter` (or any ``tracer``).
"""

from __future__ import annotations

from .analysis import PacketMatch, TraceAnalysis, analyze, match_packets
from .frames import frame_to_qlog, frames_to_qlog
from .reader import QlogEvent, QlogFormatError, QlogTrace, loads_qlog, read_qlog
from .validate import (
    QlogValidationError,
    assert_valid,
    check_packet_numbers,
    validate_bytes,
    validate_file,
)
from .writer import QLOGDIR_ENV, QlogDirectory, QlogWriter, open_qlog, qlog_file_name

__all__ = [
    "QLOGDIR_ENV",
    "PacketMatch",
    "QlogDirectory",
    "QlogEvent",
    "QlogFormatError",
    "QlogTrace",
    "QlogValidationError",
    "QlogWriter",
    "TraceAnalysis",
    "analyze",
    "assert_valid",
    "check_packet_numbers",
    "frame_to_qlog",
    "frames_to_qlog",
    "loads_qlog",
    "match_packets",
    "open_qlog",
    "qlog_file_name",
    "read_qlog",
    "validate_bytes",
    "validate_file",
]
