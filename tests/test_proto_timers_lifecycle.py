"""The connection's small state objects on their own: timer table, lifecycle states and
transitions, idle and handshake timers, the frame-handler table."""

from __future__ import annotations

import pytest

from quicish.proto import events as ev
from quicish.proto.congestion import create as create_congestion_controller
from quicish.proto.event_queue import EventQueue
from quicish.proto.frame_handlers import FrameHandlers
from quicish.proto.idle import HANDSHAKE_PROGRESS_CAP, HandshakeTimer, IdleTimer
from quicish.proto.lifecycle import (
    CLOSED,
    ESTABLISHED,
    HANDSHAKING,
    CloseReason,
    Closing,
    Draining,
    Lifecycle,
    State,
)
from quicish.proto.recovery import LossRecovery
from quicish.proto.stats import ConnectionStats
from quicish.proto.timers import Timer, TimerTable
from quicish.wire import frames as F


def test_timer_table_next_is_the_earliest_armed_deadline() -> None:
    table = TimerTable()
    assert table.next() is None and table.expired(1e9) == []
    table.set(Timer.LOSS, 5.0)
    table.set(Timer.IDLE, 30.0)
    table.set(Timer.ACK, 4.5)
    assert table.next() == 4.5
    table.stop(Timer.ACK)
    assert table.get(Timer.ACK) is None and table.next() == 5.0
    table.set(Timer.LOSS, None)
    assert table.next() == 30.0


def test_timer_table_expired_lists_due_timers_in_handling_order() -> None:
    table = TimerTable()
    table.set(Timer.ZERO_RTT_KEY, 1.0)
    table.set(Timer.KEEP_ALIVE, 2.0)
    table.set(Timer.IDLE, 2.0)
    table.set(Timer.LOSS, 3.0)
    assert table.expired(0.5) == []
    assert table.expired(2.0) == [Timer.IDLE, Timer.KEEP_ALIVE, Timer.ZERO_RTT_KEY]
    assert table.expired(3.0) == [Timer.IDLE, Timer.LOSS, Timer.KEEP_ALIVE, Timer.ZERO_RTT_KEY]


def test_lifecycle_states_say_what_they_allow() -> None:
    for open_state in (HANDSHAKING, ESTABLISHED):
        assert open_state.is_open and open_state.is_active and not open_state.is_closed
        assert open_state.end is None
    closing = Closing(CloseReason(0x0A, None, "bye", False), deadline=7.0)
    assert not closing.is_open and closing.is_active and closing.end == 7.0
    draining = Draining(9.0)
    assert not draining.is_open and not draining.is_active and draining.end == 9.0
    assert CLOSED.is_closed and not CLOSED.is_active and CLOSED.end is None
    assert repr(closing) == "Closing" and repr(CLOSED) == "Closed"


def test_closing_answers_datagrams_with_exponential_back_off() -> None:
    closing = Closing(CloseReason(0, None, "", True), deadline=1.0)
    assert closing.send_due  # the close goes out first
    answered = []
    for n in range(1, 20):
        closing.send_due = False
        closing.on_datagram()
        if closing.send_due:
            answered.append(n)
    assert answered == [1, 2, 4, 8, 16]


def test_idle_timer_deadline_negotiation_and_restart() -> None:
    idle = IdleTimer(30.0, None)
    idle.negotiate(10.0)
    assert idle.timeout == 10.0
    idle.negotiate(0.0)  # the peer has none: ours stays
    assert idle.timeout == 10.0
    idle.on_packet_received(100.0)
    assert idle.deadline(pto=1.0) == 110.0
    assert idle.deadline(pto=5.0) == 115.0  # never sooner than three PTOs
    idle.on_eliciting_sent(101.0)  # the first ack-eliciting packet after receiving restarts it
    idle.on_eliciting_sent(102.0)  # ... later ones do not
    assert idle.last_activity == 101.0
    assert IdleTimer(0.0, None).deadline(1.0) is None
    disabled = IdleTimer(0.0, None)
    disabled.negotiate(20.0)
    assert disabled.timeout == 20.0


def test_keep_alive_deadline() -> None:
    idle = IdleTimer(30.0, 5.0)
    idle.last_activity = 10.0
    assert idle.keep_alive_deadline() == 15.0
    idle.on_keep_alive(15.0)
    assert idle.keep_alive_deadline() == 20.0
    assert IdleTimer(30.0, None).keep_alive_deadline() is None


def test_handshake_timer_progress_is_capped() -> None:
    timer = HandshakeTimer(2.0)
    timer.progress(1.0)  # not started: nothing to move
    assert timer.deadline is None
    timer.start(100.0)
    assert timer.deadline == 102.0
    timer.progress(101.5)
    assert timer.deadline == 103.5
    timer.progress(101.0)  # an older moment never moves it back
    assert timer.deadline == 103.5
    for now in range(102, 110):
        timer.progress(float(now))
    assert timer.deadline == pytest.approx(100.0 + HANDSHAKE_PROGRESS_CAP * 2.0)
    timer.complete()
    assert timer.deadline is None
    untimed = HandshakeTimer(None)
    untimed.start(0.0)
    assert untimed.deadline is None


def _lifecycle(released: list[str]) -> tuple[Lifecycle, EventQueue]:
    events = EventQueue(1 << 16, ConnectionStats())
    recovery = LossRecovery(create_congestion_controller("newreno", 1200), max_ack_delay=0.025)
    idle = IdleTimer(30.0, None)
    idle.last_activity = 7.0
    hooks = (_Part("streams", released), _Part("records", released))
    return Lifecycle(events, recovery, idle, hooks), events


class _Part:
    def __init__(self, name: str, released: list[str]) -> None:
        self.name, self.released = name, released

    def release(self) -> None:
        self.released.append(self.name)


def _state(life: Lifecycle) -> State:
    return life.state  # (read afresh: a transition changes it)


def _drain(events: EventQueue) -> list[ev.Event]:
    out = []
    while (event := events.next()) is not None:
        out.append(event)
    return out


def test_lifecycle_reports_the_end_once_and_closes_for_three_ptos() -> None:
    released: list[str] = []
    life, events = _lifecycle(released)
    assert life.state is HANDSHAKING
    life.establish()
    assert _state(life) is ESTABLISHED
    life.close(0x0A, None, "bye", application=True, now=None)  # from the last activity
    state = life.state
    assert isinstance(state, Closing) and state.close == CloseReason(0x0A, None, "bye", True)
    assert state.end is not None and state.end > 7.0
    life.close_with_error(1, "again", None, 8.0)  # no longer open: nothing changes
    life.terminate(2, "and again", None, by_peer=True)
    assert life.state is state
    assert _drain(events) == [ev.ConnectionTerminated(0x0A, "bye", None, False)]
    assert released == []
    life.end()
    assert _state(life) is CLOSED and released == ["streams", "records"]


def test_lifecycle_drains_when_the_peer_closes_and_names_internal_errors_by_type() -> None:
    life, events = _lifecycle([])
    life.drain(3, "peer", 0x08, now=1.0)
    assert isinstance(life.state, Draining) and life.state.deadline > 1.0
    assert _drain(events) == [ev.ConnectionTerminated(3, "peer", 0x08, True)]
    life, events = _lifecycle([])
    life.close_internal(KeyError("secret detail"), now=2.0)
    assert isinstance(life.state, Closing)
    assert life.state.close.reason == "internal error (KeyError)"
    life.establish()  # a late handshake completion does not reopen it
    assert isinstance(life.state, Closing)


def test_frame_handler_table_covers_every_frame_that_does_something() -> None:
    table = FrameHandlers.table
    # (PADDING and PING do nothing beyond eliciting an ACK; DATA_BLOCKED and
    # STREAMS_BLOCKED only inform)
    assert set(table) == {
        F.AckFrame,
        F.CryptoFrame,
        F.StreamFrame,
        F.ResetStreamFrame,
        F.StopSendingFrame,
        F.MaxDataFrame,
        F.MaxStreamDataFrame,
        F.MaxStreamsFrame,
        F.StreamDataBlockedFrame,
        F.HandshakeDoneFrame,
        F.ConnectionCloseFrame,
        F.DatagramFrame,
        F.PathChallengeFrame,
        F.PathResponseFrame,
        F.NewTokenFrame,
        F.NewConnectionIdFrame,
        F.RetireConnectionIdFrame,
        F.AckFrequencyFrame,  # draft-ietf-quic-ack-frequency
        F.ImmediateAckFrame,
    }
    for kind, handler in table.items():
        assert getattr(FrameHandlers, handler.__name__) is handler, kind
