"""A connection's lifecycle as one state object (RFC 9000 section 10).

``HANDSHAKING`` -> ``ESTABLISHED`` -> :class:`Closing` (we sent CONNECTION_CLOSE) or
:class:`Draining` (the peer closed, or reset) -> ``CLOSED``; an idle or handshake timeout
or a Version Negotiation goes to ``CLOSED`` directly. What a closing or draining connection
needs (the close frame, when it ends, how often to answer) lives in its state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class State:
    """Base of the lifecycle states; the class attributes say what a state allows."""

    __slots__ = ()
    #: Frames are processed and the application may open, send and close.
    is_open: ClassVar[bool] = True
    #: Datagrams are still read and written (open, or closing: answered with the close).
    is_active: ClassVar[bool] = True
    #: Nothing more happens: no timer, no datagram.
    is_closed: ClassVar[bool] = False

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
