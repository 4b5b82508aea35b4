"""A qlog file's flushes off the event loop: render_chunk and QlogSpool, the C core's
(py_qlog.c, py_qlog_spool.c) against the pure twin's, and QlogWriter in background mode.

The C ``render_chunk`` renders a BulkRecords of plain records with the GIL released; the C
``QlogSpool`` renders and writes each flush on its worker thread (no GIL at all, times by
snprintf where the short cut cannot say): the same bytes as the twin's, which writes at
submit. Its queue is bounded (back-pressure, nothing dropped); a write error stops it.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_qlog_native import random_record

from quicish import native
from quicish.native import accelerated, pure
from quicish.qlog.events import packets_acked
from quicish.qlog.render import dumps, render_packets_acked
from quicish.qlog.writer import QlogWriter, open_qlog

pytestmark = pytest.mark.skipif(not native.ACCELERATED, reason="needs the C core")
ODCID = bytes.fromhex("0011223344556677")


def random_parts(rng: random.Random, n: int) -> list[Any]:
    """bytes and ascending ints up to n, as a flush makes them."""
    parts: list[Any] = []
    cuts = sorted(rng.randrange(n + 1) for _ in range(rng.randrange(4)))
    for cut in [*cuts, n]:
        if rng.random() < 0.5:
            parts.append(rng.randbytes(rng.randrange(200)))
        parts.append(cut)
    return parts


def test_render_chunk_c_and_twin_give_the_same_bytes() -> None:
    rng = random.Random(5)
    for _ in range(200):
        start = rng.choice((0.0, 1000.25, rng.uniform(0, 1e6)))
        records = [random_record(rng, start) for _ in range(rng.randrange(0, 50))]
        parts = random_parts(rng, len(records))
        want = pure.render_chunk(records, start, parts)
        assert accelerated.render_chunk(records, start, parts) == want  # a list: with the GIL
        bulk = accelerated.BulkRecords()
        for record in records:
            bulk.append(record)
        assert accelerated.render_chunk(bulk, start, parts) == want  # plain: GIL released
        assert len(bulk) == len(records)  # (rendered, not taken)


def test_render_chunk_refuses_bad_parts() -> None:
    records = [random_record(random.Random(1), 0.0)]
    for impl in (accelerated.render_chunk, pure.render_chunk):
        with pytest.raises(IndexError):
            impl(records, 0.0, [2])
        with pytest.raises(TypeError):
            impl(records, 0.0, ["text"])


def test_bulk_records_cannot_change_while_rendered_without_the_gil() -> None:
    """(The busy flag: an append from another thread meanwhile raises, it does not race.)"""
    bulk = accelerated.BulkRecords()
    record = (1.0, "quic:packet_sent", "1RTT", 1, 0, 0, False, 1200, 1252)
    for _ in range(200_000):
        bulk.append(record)
    errors: list[Exception] = []
    done = threading.Event()

    def append() -> None:
        while not done.is_set():
            try:
                bulk.append(record)
            except RuntimeError as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=append)
    thread.start()
    try:
        for _ in range(20):
            accelerated.render_chunk(bulk, 0.0, [len(bulk)])
            if errors:
                break
    finally:
        done.set()
        thread.join()
    assert errors and "another thread" in str(errors[0])


def test_render_ints_and_packets_acked_are_what_json_writes() -> None:
    rng = random.Random(3)
    for _ in range(100):
        numbers = [rng.randrange(-(1 << 63), 1 << 63) for _ in range(rng.randrange(300))]
        text = ",".join(map(str, numbers))
        assert accelerated.render_ints(numbers) == pure.render_ints(numbers) == text
        data = packets_acked(rng.randrange(3), numbers)
        assert render_packets_acked(data) == dumps(data)
    for bad in ([True], [1.0], [1 << 63], [-(1 << 63) - 1], (1, 2)):
        for impl in (accelerated.render_ints, pure.render_ints):
            with pytest.raises(TypeError):
                impl(bad)  # type: ignore[arg-type]
        assert render_packets_acked({"packet_number_space": "x", "packet_numbers": bad}) is None


def _spool_run(spool_type: Any, path: Path, jobs: list[tuple[list[Any], float, list[Any]]]) -> Any:
    with open(path, "wb") as f:
        spool = spool_type(f.fileno())
        for records, start, parts in jobs:
            bulk: Any = accelerated.BulkRecords() if spool_type is accelerated.QlogSpool else []
            for record in records:
                bulk.append(record)
            spool.submit(bulk, start, parts, len(records) + 1)
            assert len(bulk) == 0  # taken
        spool.close()
        return spool


def test_spool_c_and_twin_write_the_same_file(tmp_path: Path) -> None:
    rng = random.Random(11)
    jobs = []
    for _ in range(40):
        start = rng.choice((0.0, rng.uniform(0, 1e6)))
        records = [random_record(rng, start) for _ in range(rng.randrange(0, 3000))]
        records = [r for r in records if r[-1] < (1 << 63)]  # (int64 ints only: C takes them)
        jobs.append((records, start, random_parts(rng, len(records))))
    c = _spool_run(accelerated.QlogSpool, tmp_path / "c", jobs)
    py = _spool_run(pure.QlogSpool, tmp_path / "py", jobs)
    assert (tmp_path / "c").read_bytes() == (tmp_path / "py").read_bytes()
    assert c.events_written == py.events_written == sum(len(j[0]) + 1 for j in jobs)
    assert c.error == py.error == 0 and c.pending == 0


def test_spool_queue_is_bounded_and_waits_for_room() -> None:
    """Back-pressure: with the file not taking text (a pipe no one reads), at most
    QUEUE_JOBS (8) flushes are queued or being written; the next submit waits, and all of
    them arrive, in order, once the reader reads."""
    read_end, write_end = os.pipe()
    spool = accelerated.QlogSpool(write_end)
    os.close(write_end)
    chunks = [bytes([65 + i % 26]) * 100_000 for i in range(14)]
    submitted: list[int] = []

    def submit_all() -> None:
        for i, chunk in enumerate(chunks):
            spool.submit(None, 0.0, [chunk], 1)
            submitted.append(i)

    thread = threading.Thread(target=submit_all, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while len(submitted) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert len(submitted) == 8  # 7 queued + 1 being written (blocked in write)
    assert spool.pending == 8 and thread.is_alive()
    got = bytearray()
    while len(got) < sum(map(len, chunks)):
        got += os.read(read_end, 1 << 20)
    thread.join(5)
    spool.close()
    os.close(read_end)
    assert bytes(got) == b"".join(chunks) and spool.events_written == len(chunks)


def test_spool_write_error_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "ro"
    path.write_bytes(b"")
    for spool_type in (accelerated.QlogSpool, pure.QlogSpool):
        with open(path, "rb") as f:  # (read-only: writes fail with EBADF)
            spool = spool_type(f.fileno())
            spool.submit(None, 0.0, [b"x" * 10], 1)
            spool.wait()
            assert spool.error == errno.EBADF
            spool.submit(None, 0.0, [b"y"], 1)  # dropped
            spool.close()
            assert spool.events_written == 0 and spool.error == errno.EBADF
        with pytest.raises(ValueError):
            spool.submit(None, 0.0, [b"z"], 1)


def _log(writer: QlogWriter, n: int) -> None:
    """n bulk packets with other events among them, every kind the writer renders."""
    for i in range(n):
        writer.stream_packet(
            "quic:packet_sent", i / 1000, "1RTT", i, 1252, 0, i * 1200, 1200, False
        )
        if i % 97 == 0:
            writer.event("quic:packets_acked", packets_acked(2, list(range(i, i + 40))), i / 1000)
            writer.packet("quic:packet_received", i / 1000, "1RTT", i, 40, [("ack", [(0, i + 1)])])
            writer.metrics(i / 1000, {"cwnd": 10_000 + i, "smoothed_rtt": 0.001 * (1 + i % 7)})


def test_background_writer_file_is_complete_at_close_and_the_sync_ones_bytes(
    tmp_path: Path,
) -> None:
    background = open_qlog(tmp_path / "bg", ODCID, True, start=0.0)
    sync = open_qlog(tmp_path / "sync", ODCID, True, start=0.0, background=False)
    assert background.background and not sync.background
    for writer in (background, sync):
        _log(writer, 10_000)
        writer.close()
        assert writer.error is None and writer.closed
    assert background.events_written == sync.events_written == 10_000 + 3 * 104
    a = Path(background.path or "").read_bytes()
    b = Path(sync.path or "").read_bytes()
    assert a.split(b"\x1e")[2:] == b.split(b"\x1e")[2:]  # (the headers' wall clocks differ)
    records = [json.loads(r) for r in a.split(b"\x1e")[1:]]
    assert len(records) == 1 + 10_000 + 3 * 104  # the header, then every event
    assert records[-1]["name"] == "quic:packet_sent" and records[-1]["data"]["header"] == {
        "packet_type": "1RTT",
        "packet_number": 9999,
    }


class _ReadOnlyFd(io.BytesIO):
    """A stream that takes the header but whose descriptor refuses writes."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def test_background_writer_reports_the_workers_write_error(tmp_path: Path) -> None:
    path = tmp_path / "ro"
    path.write_bytes(b"")
    with open(path, "rb") as f:
        writer = QlogWriter(_ReadOnlyFd(f.fileno()), ODCID, True, start=0.0, background=True)
        _log(writer, 5000)
        writer.close()
    assert isinstance(writer.error, OSError) and writer.error.errno == errno.EBADF
    assert writer.events_written == 0 and writer.closed


def test_writer_without_a_descriptor_stays_in_this_thread() -> None:
    out = io.BytesIO()
    writer = QlogWriter(out, ODCID, True, start=0.0, background=True, close_stream=False)
    _log(writer, 3000)
    writer.flush()
    assert not writer.background  # (BytesIO has no descriptor: written here, at flush)
    assert len(out.getvalue().split(b"\x1e")) == 2 + 3000 + 3 * 31


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_writer_thread(tmp_path: Path) -> None:
    """(The worker is a thread of the parent: the child starts its own, and the parent's
    queued flushes stay the parent's.)"""
    parent = open_qlog(tmp_path, b"\x01" * 8, True, start=0.0)
    _log(parent, 5000)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child's)
        child = open_qlog(tmp_path, b"\x02" * 8, True, start=0.0)
        _log(child, 5000)
        child.close()
        os._exit(0 if child.error is None and child.events_written == 5000 + 3 * 52 else 3)
    _, status = os.waitpid(pid, 0)
    parent.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.error is None and parent.events_written == 5000 + 3 * 52
    for odcid in (b"\x01" * 8, b"\x02" * 8):
        data = (tmp_path / f"{odcid.hex()}_client.sqlog").read_bytes()
        assert data.count(b"\x1e") == 1 + 5000 + 3 * 52
