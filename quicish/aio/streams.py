"""``asyncio.StreamReader``/``StreamWriter``-compatible objects over one QUIC stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

from ..errors import ConnectionClosedError, QuicError, StreamError, StreamResetError

Address = tuple[str, int]

_LIMIT = 1 << 16


class StreamOwner(Protocol):
    """What readers and writers need of their connection (``QuicConnection``)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def remote_address(self) -> Address | None: ...

    @property
    def local_address(self) -> Address: ...

    @property
    def send_buffer_limit(self) -> int: ...

    def stream_read(self, stream_id: int, max_bytes: int) -> tuple[bytes, bool]: ...

    def stream_read_after_close(self, stream_id: int, max_bytes: int) -> tuple[bytes, bool]: ...

    def stream_send(self, stream_id: int, data: bytes, fin: bool) -> None: ...

    def stream_send_buffered(self, stream_id: int) -> int: ...

    def stream_send_progress(self, stream_id: int) -> tuple[int, int] | None: ...

    def stream_reset(self, stream_id: int, code: int) -> None: ...

    def stream_stop_sending(self, stream_id: int, code: int) -> None: ...


class QuicStreamReader:
    """The receiving half of a stream, with ``asyncio.StreamReader``'s reading methods."""

    def __init__(self, conn: StreamOwner, stream_id: int, early_data: bool = False) -> None:
        self._conn = conn
        self.stream_id = stream_id
        #: Opened by the peer in 0-RTT: its first bytes may be a replay (a server's view;
        #: docs/deployment.md, "0-RTT replay").
        self.early_data = early_data
        self._pending = bytearray()  # read from the connection but not yet returned
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._received = 0  # bytes taken from the connection
        self._on_eof: list[asyncio.Future[None]] = []  # set at EOF

    @property
    def bytes_received(self) -> int:
        """Bytes of the stream received in order so far (some may wait in this reader)."""
        return self._received

    # ---- called by the connection ----
    def wake(self) -> None:
        """New data (or the end of the stream) can be read."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def set_exception(self, exc: BaseException) -> None:
        """The stream failed (reset by the peer, connection closed): reads raise ``exc``
        once the data received before it is read."""
        if self._error is None:
            self._error = exc
        self.wake()

    def add_eof_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Set ``waiter``'s result once the end of the stream is read (now, if it was)."""
        self._on_eof.append(waiter)
        if self._eof and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        if self._waiter is not None:
            raise RuntimeError(f"stream {self.stream_id}: another coroutine is already reading")
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _pull(self, max_bytes: int) -> bytes:
        if self._eof:
            return b""
        error = self._error
        if error is not None:
            if not isinstance(error, ConnectionClosedError):
                raise error  # reset by the peer: the stream is gone
            data, fin = self._conn.stream_read_after_close(self.stream_id, max_bytes)
            if not fin and not data:
                raise error
        else:
            data, fin = self._conn.stream_read(self.stream_id, max_bytes)
        self._received += len(data)
        if fin:
            self._eof = True
            for waiter in self._on_eof:
                if not waiter.done():
                    waiter.set_result(None)
        return data

    def peek(self, max_bytes: int = _LIMIT) -> bytes:
        """The bytes readable now (up to ``max_bytes``), without consuming them: the next
        reads return them."""
        if self._error is None and len(self._pending) < max_bytes:
            with contextlib.suppress(QuicError):  # (the stream is gone: reads say why)
                self._pending += self._pull(max_bytes - len(self._pending))
        return bytes(self._pending[:max_bytes])

    def at_eof(self) -> bool:
        return self._eof and not self._pending

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (``-1``: everything until EOF); ``b""`` at EOF."""
        if n == 0:
            return b""
        if n < 0:
            chunks = [bytes(self._pending)]
            self._pending.clear()
            while not self._eof:
                data = self._pull(-1)
                if data:
                    chunks.append(data)
                elif not self._eof:
                    await self._wait_or_raise()
            return b"".join(chunks)
        while True:
            if self._pending:
                data = bytes(self._pending[:n])
                del self._pending[:n]
                return data
            data = self._pull(n)
            if data or self._eof:
                return data
            await self._wait_or_raise()

    async def _wait_or_raise(self) -> None:
        if self._error is None:
            await self._wait()

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or ``asyncio.IncompleteReadError`` at an early EOF."""
        if not self._pending and n > 0:
            while self._error is None:  # (a whole message at once: no copy through _pending)
                data = self._pull(n)
                if len(data) == n:
                    return data
                if data or self._eof:
                    self._pending += data
                    break
                if self._waiter is not None:  # (self._wait() inlined: once per message)
                    raise RuntimeError(
                        f"stream {self.stream_id}: another coroutine is already reading"
                    )
                waiter = self._waiter = self._conn.loop.create_future()
                try:
                    await waiter  # (nothing yet: no second read before the wake)
                finally:
                    self._waiter = None
        while len(self._pending) < n and not self._eof:
            data = self._pull(n - len(self._pending))
            if data:
                self._pending += data
            elif not self._eof:
                await self._wait_or_raise()
        if len(self._pending) < n:
            partial = bytes(self._pending)
            self._pending.clear()
            raise asyncio.IncompleteReadError(partial, n)
        data = bytes(self._pending[:n])
        del self._pending[:n]
        return data

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        """Bytes up to and including ``separator``."""
        if not separator:
            raise ValueError("separator must not be empty")
        start = 0
        while True:
            idx = self._pending.find(separator, start)
            if idx >= 0:
                end = idx + len(separator)
                data = bytes(self._pending[:end])
                del self._pending[:end]
                return data
            if len(self._pending) > _LIMIT:
                raise asyncio.LimitOverrunError("separator not found within the limit", start)
            if self._eof:
                partial = bytes(self._pending)
                self._pending.clear()
                raise asyncio.IncompleteReadError(partial, None)
            start = max(0, len(self._pending) - len(separator) + 1)
            data = self._pull(_LIMIT)
            if data:
                self._pending += data
            elif not self._eof:
                await self._wait_or_raise()

    async def readline(self) -> bytes:
        """A line including ``\\n``, or what is left at EOF."""
        try:
            return await self.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial

    def stop_sending(self, error_code: int = 0) -> None:
        """Ask the peer to stop sending on this stream (STOP_SENDING)."""
        self._conn.stream_stop_sending(self.stream_id, error_code)

    def __aiter__(self) -> QuicStreamReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line


class QuicStreamWriter:
    """The sending half of a stream, with ``asyncio.StreamWriter``'s methods plus ``reset``."""

    def __init__(self, conn: StreamOwner, stream_id: int, reader: QuicStreamReader | None):
        self._conn = conn
        self.stream_id = stream_id
        self._reader = reader
        self._closing = False
        self._error: BaseException | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._closed_waiter: asyncio.Future[None] = conn.loop.create_future()
        self._written = 0
        self._progress = (0, 0)  # (sent, acknowledged) when last seen

    @property
    def transport(self) -> QuicStreamWriter:
        return self

    @property
    def bytes_written(self) -> int:
        """Bytes the application wrote (buffered or gone)."""
        return self._written

    @property
    def bytes_sent(self) -> int:
        """Bytes sent to the peer at least once (the rest waits in the send buffer)."""
        return self._update_progress()[0]

    @property
    def bytes_acked(self) -> int:
        """Bytes the peer acknowledged, in order from the start: what was really delivered
        (for a progress display; ``bytes_written`` counts what was merely buffered)."""
        return self._update_progress()[1]

    def _update_progress(self) -> tuple[int, int]:
        if self._closed_waiter.done() and self._error is None:
            self._progress = (self._written, self._written)  # all of it acknowledged
        else:
            progress = self._conn.stream_send_progress(self.stream_id)
            if progress is not None:
                self._progress = progress
        return self._progress

    # ---- called by the connection ----
    def wake(self) -> None:
        """Send buffer space may have been freed: wake a ``drain()``."""
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def set_exception(self, exc: BaseException) -> None:
        """The stream failed (stopped by the peer, connection closed): writes raise ``exc``
        and ``wait_closed()`` returns."""
        if self._error is None:
            self._error = exc
        self.wake()
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)

    def set_finished(self, closing: bool = False) -> None:
        """Everything written was acknowledged (or nothing can be sent: ``closing``, for the
        writer of a peer's unidirectional stream): ``wait_closed()`` returns."""
        if closing:
            self._closing = True
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        if self._closing:
            raise StreamError(f"stream {self.stream_id} is closing")
        if data:
            self._conn.stream_send(self.stream_id, bytes(data), False)
            self._written += len(data)

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """Send FIN: no more data on this stream."""
        if self._closing:
            return
        self._closing = True
        self._conn.stream_send(self.stream_id, b"", True)

    async def drain(self) -> None:
        """Wait until the stream's send buffer is below its limit (flow control backpressure)."""
        if self._error is not None:
            raise self._error
        limit = self._conn.send_buffer_limit
        while self._conn.stream_send_buffered(self.stream_id) > limit:
            waiter = self._drain_waiter
            if waiter is None or waiter.done():  # several tasks may drain at once
                waiter = self._drain_waiter = self._conn.loop.create_future()
            await asyncio.shield(waiter)
            if self._error is not None:
                raise self._error

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Finish the stream (sends FIN if not sent yet)."""
        if not self._closing and self._error is None:
            self.write_eof()
        self._closing = True

    async def wait_closed(self) -> None:
        """Wait until everything written, FIN included, is acknowledged (or the stream failed)."""
        await self._closed_waiter
        if isinstance(self._error, StreamResetError):
            return

    def reset(self, error_code: int = 0) -> None:
        """Abandon the stream (RESET_STREAM with ``error_code``)."""
        self._closing = True
        self._conn.stream_reset(self.stream_id, error_code)
        self.set_finished()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """As ``asyncio.StreamWriter.get_extra_info``: ``"stream_id"``, ``"connection"`` (the
        :class:`QuicConnection`), ``"peername"`` (the peer's current address) and
        ``"sockname"`` (the local address); ``default`` for any other name."""
        info = {
            "stream_id": self.stream_id,
            "connection": self._conn,
            "peername": self._conn.remote_address,
            "sockname": self._conn.local_address,
        }
        return info.get(name, default)
