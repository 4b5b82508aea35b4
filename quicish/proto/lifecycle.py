"""A connection's lifecycle as one state object (RFC 9000 section 10).

``HANDSHAKING`` -> ``ESTABLISHED`` -> :class:`Closing` (we sent CONNECTION_CLOSE) or
:class:`Draining` (the peer closed, or reset) -> ``CLOSED``; an idle or handshake timeout
or a Version Negotiation goes to ``CLOSED`` directly. What a closing or draining connection
needs (the close frame, when it ends, how often to answer) lives in its state;
:class:`Lifecycle` holds the state and makes its transitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ..errors import ErrorCode
from . import events as ev
from .event_queue import EventQueue
from .idle import IdleTimer
from .recovery import LossRecovery
from .trace import Trace


class State:
    """Base of the lifecycle states; the class attributes say what a state allows."""

    __slots__ = ()
    #: Frames are processed and the application may open, send and close.
    is_open: ClassVar[bool] = True
    #: Datagrams are still read and written (open, or closing: answered with the close).
    is_active: ClassVar[bool] = True
    #: Nothing more happens: no timer, no datagram.
    is_closed: ClassVar[bool] = False
    #: We sent CONNECTION_CLOSE (:class:`Closing`): datagrams are answered with it again.
    is_closing: ClassVar[bool] = False

    @property
    def end(self) -> float | None:
        """When a closing or draining connection becomes closed (None: not ending)."""
        return None

    def __repr__(self) -> str:
        return type(self).__name__


class Handshaking(State):
    __slots__ = ()


class Established(State):
    __slots__ = ()


@dataclass(frozen=True)
class CloseReason:
    """What our CONNECTION_CLOSE says; ``application``: a 0x1d close of the application."""

    code: int
    frame_type: int | None
    reason: str
    application: bool


@dataclass(repr=False)
class Closing(State):
    """We sent (or are about to send) CONNECTION_CLOSE; it ends at ``deadline``."""

    close: CloseReason
    deadline: float
    send_due: bool = True  # the close frame goes out with the next datagrams_to_send
    received: int = 0  # datagrams received while closing

    is_open: ClassVar[bool] = False
    is_closing: ClassVar[bool] = True

    @property
    def end(self) -> float | None:
        return self.deadline

    def on_datagram(self) -> None:
        """A datagram arrived: answer the 1st, 2nd, 4th, 8th... with the close again
        (RFC 9000 10.2.1: the rate of such packets is limited)."""
        self.received += 1
        n = self.received
        if n & (n - 1) == 0:
            self.send_due = True


@dataclass(repr=False)
class Draining(State):
    """The peer closed (or reset) the connection: nothing is sent; it ends at ``deadline``."""

    deadline: float

    is_open: ClassVar[bool] = False
    is_active: ClassVar[bool] = False

    @property
    def end(self) -> float | None:
        return self.deadline


class Closed(State):
    __slots__ = ()
    is_open: ClassVar[bool] = False
    is_active: ClassVar[bool] = False
    is_closed: ClassVar[bool] = True


HANDSHAKING = Handshaking()
ESTABLISHED = Established()
CLOSED = Closed()


class Releasable(Protocol):
    """A part whose callbacks refer back to its owner: ``release()`` unhooks them."""

    def release(self) -> None: ...


class Lifecycle:
    """A connection's state and its transitions. The end is reported once (one
    ``ConnectionTerminated``, while the connection is open); :meth:`end` also runs the
    release hooks of the parts whose callbacks refer back to their owners, so a closed
    connection is freed by reference counting."""

    __slots__ = ("_events", "_idle", "_recovery", "_release", "state", "trace")

    def __init__(
        self,
        events: EventQueue,
        recovery: LossRecovery,
        idle: IdleTimer,
        release: Sequence[Releasable],
    ) -> None:
        self.state: State = HANDSHAKING
        self._events = events
        self._recovery = recovery
        self._idle = idle
        self._release = release
        self.trace: Trace | None = None  # told of the end, closed at the end

    def establish(self) -> None:
        """The handshake completed."""
        if self.state is HANDSHAKING:
            self.state = ESTABLISHED

    def terminate(
        self,
        code: int,
        reason: str,
        frame_type: int | None,
        by_peer: bool,
        application: bool = False,
        now: float | None = None,
    ) -> None:
        """Report the end (once: only while open; the caller then moves the connection to
        closing, draining or closed)."""
        if self.state.is_open:
            end = ev.ConnectionTerminated(code, reason, frame_type, by_peer, application)
            self._events.append(end)
            if self.trace is not None:
                self.trace.closed(code, reason, frame_type, by_peer, application, now)

    def close(
        self,
        code: int,
        frame_type: int | None,
        reason: str,
        application: bool,
        now: float | None,
    ) -> None:
        """We close: CONNECTION_CLOSE goes out, then the connection closes for three PTOs
        (RFC 9000 10.2.1)."""
        if not self.state.is_open:
            return
        self.terminate(code, reason, frame_type, False, application, now)
        base = now if now is not None else self._idle.last_activity
        close = CloseReason(code, frame_type, reason, application)
        self.state = Closing(close, base + 3 * self._recovery.pto_interval())

    def close_with_error(self, code: int, reason: str, frame_type: int | None, now: float) -> None:
        self.close(code, frame_type, reason, application=False, now=now)

    def close_internal(self, exc: BaseException, now: float) -> None:
        """Close with INTERNAL_ERROR after an unexpected exception (logged by the caller);
        the local reason names its type, never its text."""
        reason = f"internal error ({type(exc).__name__})"
        self.close_with_error(ErrorCode.INTERNAL_ERROR, reason, None, now)

    def drain(
        self,
        code: int,
        reason: str,
        frame_type: int | None,
        now: float,
        application: bool = False,
    ) -> None:
        """The peer closed (or reset the connection): report it, then drain for three PTOs
        (RFC 9000 10.2.2)."""
        self.terminate(code, reason, frame_type, True, application, now)
        self.state = Draining(now + 3 * self._recovery.pto_interval())

    def end(self) -> None:
        """Closed for good: release the parts' callbacks."""
        self.state = CLOSED
        for part in self._release:
            part.release()
        if self.trace is not None:
            self.trace.end()
