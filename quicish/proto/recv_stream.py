"""The receiving half of a stream (RFC 9000 sections 2.2, 3.2, 4.1, 4.5, 19.5).

``RecvStream`` puts STREAM frames back in order through ``native.ReassemblyBuffer``
(which enforces our flow-control limit and the final-size rules), hands contiguous bytes
to the application, handles RESET_STREAM and STOP_SENDING, and decides when to advertise
a larger MAX_STREAM_DATA, growing its window when the application keeps up.

Connection-level accounting is left to the caller: ``on_stream_frame`` / ``on_reset``
return how much the highest received offset grew (charge ``ReceiveWindow.on_data``);
bytes the application reads are charged with ``ReceiveWindow.on_consumed(len(data))``;
bytes dropped unread (reset, STOP_SENDING) accumulate in ``take_released()``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ErrorCode, ProtocolError
from ..native import ReassemblyBuffer
from .flow import ReceiveWindow

__all__ = ["FragmentBudget", "RecvStream"]

_OPEN, _DISCARD, _RESET = 0, 1, 2


class FragmentBudget:
    """Out-of-order fragments buffered across the streams of one connection (``used``),
    and how many are allowed (``limit``): each fragment costs a segment and an allocation
    whatever its size, so their number is bounded as well as their bytes."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0


class RecvStream:
    """Reassembly, read side and receive window of one stream.

    ``window``: initial limit we advertise (our initial_max_stream_data_*);
    ``max_window``: ceiling for automatic growth (None: no growth).
    ``wake``, when set (by the ``StreamManager``), is called when a control frame may be
    due (MAX_STREAM_DATA, STOP_SENDING), bytes were released, or the half is done.
    ``max_fragments``: out-of-order fragments allowed on this stream (None: no limit);
    ``budget``: the connection's count of them, shared by its streams. Beyond either the
    frame raises ``ProtocolError`` PROTOCOL_VIOLATION.
    """

    __slots__ = (
        "_buf",
        "_eof_notified",
        "_final_size",
        "_fragments",
        "_notified",
        "_released",
        "_reset_code",
        "_state",
        "_stop_code",
        "_stop_pending",
        "budget",
        "stream_id",
        "wake",
        "window",
    )

    def __init__(
        self,
        window: int,
        max_window: int | None = None,
        stream_id: int = -1,
        max_fragments: int | None = None,
        budget: FragmentBudget | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.window = ReceiveWindow(window, max_window)
        self.wake: Callable[[], None] | None = None
        self._buf = ReassemblyBuffer(window)
        if max_fragments is not None:
            self._buf.max_fragments = max_fragments
        self.budget = budget
        self._fragments = 0  # what this stream has charged to the budget
        self._state = _OPEN
        self._released = 0
        self._final_size: int | None = None  # after a reset (the buffer knows it otherwise)
        self._reset_code: int | None = None
        self._stop_code: int | None = None
        self._stop_pending = False
        self._notified = False
        self._eof_notified = False

    # ---- frames in -------------------------------------------------------------------------
    def on_stream_frame(self, offset: int, data: bytes | bytearray | memoryview, fin: bool) -> int:
        """Take a STREAM frame; returns the growth of the highest received offset.

        Raises ``ProtocolError`` FLOW_CONTROL_ERROR (beyond our limit) or FINAL_SIZE_ERROR.
        """
        if not self._state:
            buf = self._buf
            growth = buf.insert(offset, data, fin)
            if buf.fragments != self._fragments:
                self._charge(buf.fragments)
            return growth
        if self._state == _RESET:
            end = offset + len(data)
            final = self._final_size
            assert final is not None
            if end > final or (fin and end != final):
                raise ProtocolError(
                    ErrorCode.FINAL_SIZE_ERROR, f"data to {end} beyond final size {final}"
                )
            return 0
        # STOP_SENDING was sent: account the bytes, drop them.
        buf = self._buf
        growth = buf.insert(offset, data, fin)
        if buf.fragments != self._fragments:
            self._charge(buf.fragments)
        if buf.readable:
            self._released += len(buf.read())
            if self.wake is not None:
                self.wake()
        return growth

    def on_reset(self, error_code: int, final_size: int) -> int:
        """RESET_STREAM from the peer; returns the growth of the highest received offset.

        Raises FINAL_SIZE_ERROR if ``final_size`` contradicts a known final size or data
        already received, FLOW_CONTROL_ERROR if it exceeds our limit. Unread bytes up to
        the final size are released (``take_released``). A stream whose data was all read
        keeps its clean end (the reset is checked, then ignored).
        """
        if self._state == _RESET:
            if final_size != self._final_size:
                raise ProtocolError(
                    ErrorCode.FINAL_SIZE_ERROR,
                    f"final size {final_size} != {self._final_size}",
                )
            return 0
        buf = self._buf
        if final_size > buf.max_offset:
            raise ProtocolError(
                ErrorCode.FLOW_CONTROL_ERROR,
                f"final size {final_size} beyond limit {buf.max_offset}",
            )
        highest = buf.highest_offset
        had_fin = buf.final_size is not None
        buf.set_final_size(final_size)  # FINAL_SIZE_ERROR checks
        if had_fin and buf.finished:
            return 0  # the FIN came first and everything was read: keep the clean end
        self._released += final_size - buf.read_offset
        self._state = _RESET
        self._reset_code = error_code
        self._final_size = final_size
        self._stop_pending = False
        self._buf = ReassemblyBuffer(0)  # free what was buffered
        self._charge(0)
        if self.wake is not None:
            self.wake()
        return final_size - highest

    def _charge(self, fragments: int) -> None:
        """Charge the connection's budget with this stream's new fragment count."""
        added = fragments - self._fragments
        self._fragments = fragments
        budget = self.budget
        if budget is None:
            return
        budget.used += added
        if added > 0 and budget.used > budget.limit:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                f"{budget.used} out-of-order fragments on the connection exceed the limit "
                f"of {budget.limit}",
            )

    # ---- application side ------------------------------------------------------------------
    def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` (all when -1) contiguous bytes; b"" when none (or reset)."""
        self._notified = False
        if self._state:
            return b""
        buf = self._buf
        data = buf.read(max_bytes)
        finished = buf.finished
        if finished:
            self._eof_notified = True  # the reader learns the end from is_finished
        if data:
            window = self.window
            window.consumed += len(data)
            if self.wake is not None and (
                finished or 2 * (window.limit - window.consumed) < window.window
            ):
                self.wake()
        elif finished and self.wake is not None:
            self.wake()
        return data

    @property
    def readable(self) -> int:
        """Contiguous bytes ready for ``read``."""
        return self._buf.readable if not self._state else 0

    @property
    def read_offset(self) -> int:
        return self._buf.read_offset if self._state != _RESET else self._final_size or 0

    @property
    def highest_offset(self) -> int:
        return self._buf.highest_offset if self._state != _RESET else self._final_size or 0

    @property
    def final_size(self) -> int | None:
        return self._buf.final_size if self._state != _RESET else self._final_size

    @property
    def is_finished(self) -> bool:
        """Every byte up to the FIN was read (a clean end of stream)."""
        return self._state != _RESET and self._buf.finished

    @property
    def is_reset(self) -> bool:
        return self._state == _RESET

    @property
    def reset_error_code(self) -> int | None:
        return self._reset_code

    @property
    def is_done(self) -> bool:
        """Nothing more will happen on this half: finished, or reset by the peer."""
        return self._state == _RESET or self._buf.finished

    def take_released(self) -> int:
        """Bytes dropped unread since the last call (reset / STOP_SENDING): the caller
        passes them to the connection's ``ReceiveWindow.on_consumed``."""
        n = self._released
        self._released = 0
        return n

    def take_readable_event(self) -> bool:
        """True once per batch of news for the application (data readable, or end of
        stream reached) until its next ``read``; for edge-triggered events."""
        if self._state:
            return False
        buf = self._buf
        if buf.readable:
            if self._notified:
                return False
            self._notified = True
            return True
        if buf.finished and not self._eof_notified:
            self._notified = self._eof_notified = True
            return True
        return False

    # ---- STOP_SENDING ----------------------------------------------------------------------
    def stop_sending(self, error_code: int) -> bool:
        """Ask the peer to stop (a STOP_SENDING becomes pending); data arriving from now on
        is dropped. False if the stream is already done or stopping."""
        if self._state or self.is_done:
            return False
        self._state = _DISCARD
        self._stop_code = error_code
        self._stop_pending = self._buf.final_size is None
        buf = self._buf
        if buf.readable:
            self._released += len(buf.read())
        if self.wake is not None:
            self.wake()
        return True

    @property
    def stop_sending_pending(self) -> int | None:
        """Error code for a STOP_SENDING frame to send now, else None."""
        return self._stop_code if self._stop_pending else None

    def on_stop_sending_sent(self) -> None:
        self._stop_pending = False

    def on_stop_sending_lost(self) -> None:
        """Re-send STOP_SENDING unless the final size is known by now."""
        if self._state == _DISCARD and self._buf.final_size is None:
            self._stop_pending = True
            if self.wake is not None:
                self.wake()

    # ---- receive window --------------------------------------------------------------------
    @property
    def max_stream_data(self) -> int:
        """The limit we advertised last."""
        return self.window.limit

    @property
    def update_due(self) -> bool:
        """True when ``max_stream_data_update`` would return a new limit."""
        return not self._state and self._buf.final_size is None and self.window.update_due

    def max_stream_data_update(self, now: float, rtt: float) -> int | None:
        """The new MAX_STREAM_DATA to send now (the caller sends it), or None.

        Due once the application consumed more than half the window; the window doubles
        (up to ``max_window``) when the previous half went in under two round trips.
        """
        if self._state or self._buf.final_size is not None:
            return None
        limit = self.window.update(now, rtt)
        if limit is not None:
            self._buf.max_offset = limit
        return limit

    def on_max_stream_data_lost(self, limit: int | None = None) -> None:
        """The frame advertising ``limit`` (None: the current one) was lost."""
        self.window.on_update_lost(self.window.limit if limit is None else limit)
        if self.wake is not None and self.update_due:
            self.wake()
