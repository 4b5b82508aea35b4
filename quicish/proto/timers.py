"""A connection's timers: :class:`TimerTable`, named deadlines (the earliest, the expired
ones), and :class:`ConnectionTimers`, which sets each from the state it follows and runs
what each does when it expires."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from functools import partial
from operator import is_not

from ..errors import ErrorCode
from .idle import HandshakeTimer, IdleTimer
from .keys import KeyState
from .lifecycle import ESTABLISHED, Lifecycle
from .migration import Migration
from .packet_builder import MIN_BUDGET, PacketBuilder
from .packet_space import PacketSpace
from .path import PathManager
from .records import SentPacket
from .recovery import LossRecovery


class Timer(IntEnum):
    """A connection timer; :meth:`TimerTable.expired` lists them in this (handling) order."""

    IDLE = 0  # idle timeout (RFC 9000 10.1)
    HANDSHAKE = 1  # the handshake's own deadline (Config.handshake_timeout)
    LOSS = 2  # loss detection or probe timeout (RFC 9002)
    KEEP_ALIVE = 3  # a PING after Config.keep_alive seconds of quiet
    PATH_VALIDATION = 4  # a PATH_CHALLENGE to repeat or give up (RFC 9000 8.2.4)
    PACING = 5  # the pacer releases the next packet
    ZERO_RTT_KEY = 6  # a server discards its 0-RTT read key (RFC 9001 4.9.3)
    ACK = 7  # a delayed ACK is due (sent by the next datagrams_to_send)


_TIMERS = tuple(Timer)  # (indexing this is cheaper than calling Timer(index))
_ARMED = partial(is_not, None)  # (a deadline that is set: filtered in C, after every send)


class TimerTable:
    """One optional absolute deadline per :class:`Timer`."""

    __slots__ = ("_deadlines",)

    def __init__(self) -> None:
        self._deadlines: list[float | None] = [None] * len(_TIMERS)

    def set(self, timer: Timer, deadline: float | None) -> None:
        """Arm ``timer`` at ``deadline`` (None stops it)."""
        self._deadlines[timer] = deadline

    def set_all(self, deadlines: list[float | None]) -> None:
        """Every timer at once, in :class:`Timer` order (cheaper than one set() each)."""
        assert len(deadlines) == len(_TIMERS)
        self._deadlines = deadlines

    def stop(self, timer: Timer) -> None:
        self._deadlines[timer] = None

    def get(self, timer: Timer) -> float | None:
        return self._deadlines[timer]

    def next(self) -> float | None:
        """The earliest armed deadline, or None when no timer is armed."""
        armed: filter[float] = filter(_ARMED, self._deadlines)  # type: ignore[arg-type]
        return min(armed, default=None)

    def expired(self, now: float) -> list[Timer]:
        """The timers due at ``now``, in :class:`Timer` order."""
        return [
            _TIMERS[index]
            for index, deadline in enumerate(self._deadlines)
            if deadline is not None and now >= deadline
        ]


class ConnectionTimers:
    """A connection's timers over the parts they follow: :meth:`refresh` sets the table from
    their state, :meth:`handle` runs the expired ones."""

    __slots__ = (
        "_builder", "_handshake_timer", "_idle", "_keys", "_lifecycle", "_migration",
        "_on_packets_lost", "_paths", "_recovery", "_spaces", "table",
    )  # fmt: skip

    def __init__(
        self,
        *,
        spaces: Sequence[PacketSpace],
        paths: PathManager,
        recovery: LossRecovery,
        builder: PacketBuilder,
        idle: IdleTimer,
        handshake_timer: HandshakeTimer,
        keys: KeyState,
        migration: Migration,
        lifecycle: Lifecycle,
        on_packets_lost: Callable[[list[SentPacket], float], None],
    ) -> None:
        self.table = TimerTable()
        self._spaces = spaces
        self._paths = paths
        self._recovery = recovery
        self._builder = builder
        self._idle = idle
        self._handshake_timer = handshake_timer
        self._keys = keys
        self._migration = migration
        self._lifecycle = lifecycle
        self._on_packets_lost = on_packets_lost

    def refresh(self) -> TimerTable:
        """The timer table, each timer set from the state it follows."""
        builder = self._builder
        recovery = self._recovery
        idle = self._idle
        paths = self._paths
        current = paths.current
        idle_at = keep_alive = None
        timeout = idle.timeout
        if current.addr is not None and timeout:  # (not before a server's first datagram)
            # (IdleTimer.deadline of LossRecovery.pto_interval(), inlined: after every send)
            pto = recovery.rtt.pto_base() + recovery.max_ack_delay
            idle_at = idle.last_activity + max(timeout, 3 * pto)
        if idle.keep_alive and self._lifecycle.state is ESTABLISHED and not builder.pending_ping:
            keep_alive = idle.keep_alive_deadline()
        # An ACK owed on a path out of anti-amplification budget waits for the peer's next
        # datagram: as a timer it would stay due, and the driver would spin on it.
        ack: float | None = None
        if current.validated or current.amplification_budget() >= MIN_BUDGET:
            for space in self._spaces:
                due = space.ack_due_at
                if due is not None and space.unacked_ranges and (ack is None or due < ack):
                    ack = due
        path_at = None  # (PathManager.deadline: nothing without a path being validated)
        if paths.others or current.deadline is not None or current.next_challenge_at is not None:
            path_at = paths.deadline()
        table = self.table
        table.set_all(  # (in Timer order)
            [
                idle_at,
                self._handshake_timer.deadline,
                recovery.loss_detection_deadline(),
                keep_alive,
                path_at,
                builder.pacer_deadline,
                self._keys.zero_rtt_rx_until,
                ack,
            ]
        )
        return table

    def handle(self, now: float) -> None:
        """Run the timers expired at ``now`` (of an open connection)."""
        lifecycle = self._lifecycle
        for timer in self.refresh().expired(now):
            if timer is Timer.IDLE:
                lifecycle.terminate(ErrorCode.NO_ERROR, "idle timeout", None, False, now=now)
                lifecycle.end()
                return
            if timer is Timer.HANDSHAKE:
                # Silently, like an idle timeout (RFC 9000 10.1): a server owes nothing to an
                # address that may be spoofed; a client's connect() fails.
                lifecycle.terminate(ErrorCode.NO_ERROR, "handshake timeout", None, False, now=now)
                lifecycle.end()
                return
            if timer is Timer.LOSS:
                lost, probe_space = self._recovery.on_timeout(now)
                self._on_packets_lost(lost, now)
                if probe_space is not None:
                    self._builder.arm_probe(probe_space, now)
            elif timer is Timer.KEEP_ALIVE:
                self._builder.pending_ping = True
                self._idle.on_keep_alive(now)
            elif timer is Timer.PATH_VALIDATION:
                self._migration.on_timer(now)
            elif timer is Timer.ZERO_RTT_KEY:
                self._keys.discard_zero_rtt_rx()
        self._builder.pacer_deadline = None
