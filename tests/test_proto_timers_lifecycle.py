"""The connection's small state objects on their own: timer table, lifecycle states, idle
and handshake timers."""

from __future__ import annotations

import pytest

from quicish.proto.idle import HANDSHAKE_PROGRESS_CAP, HandshakeTimer, IdleTimer
from quicish.proto.lifecycle import (
    CLOSED,
    ESTABLISHED,
    HANDSHAKING,
    CloseReason,
    Closing,
    Draining,
)
from quicish.proto.timers import Timer, TimerTable


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
