"""KeyState on its own: installing secrets, deferral, key update and the AEAD limits."""

from __future__ import annotations

from quicish.config import Config
from quicish.proto.congestion import create
from quicish.proto.keys import KeyState, update_limit
from quicish.proto.packet_space import APPLICATION, HANDSHAKE, INITIAL, PacketSpace
from quicish.proto.records import SentPacket
from quicish.proto.recovery import LossRecovery
from quicish.proto.stats import ConnectionStats
from quicish.tls.engine import Epoch
from quicish.wire.packet import QUIC_V1

AES128 = 0x1301


def _state() -> tuple[KeyState, tuple[PacketSpace, ...], LossRecovery, ConnectionStats]:
    spaces = tuple(PacketSpace(i, 1 << 16, 64) for i in (INITIAL, HANDSHAKE, APPLICATION))
    recovery = LossRecovery(create(Config().congestion_control, 1200), max_ack_delay=0.025)
    stats = ConnectionStats()
    return KeyState(spaces, recovery, stats), spaces, recovery, stats


def test_install_puts_each_secret_where_it_belongs() -> None:
    keys, spaces, recovery, _ = _state()
    keys.install((Epoch.HANDSHAKE, "write", AES128, b"h" * 32), QUIC_V1)
    keys.install((Epoch.ZERO_RTT, "read", AES128, b"z" * 32), QUIC_V1)
    assert spaces[HANDSHAKE].tx is not None and spaces[HANDSHAKE].rx is None
    assert recovery.has_handshake_keys
    assert keys.zero_rtt_rx is not None and keys.zero_rtt_tx is None
    keys.deferred += ((Epoch.ONE_RTT, "read", AES128, b"a" * 32),)
    keys.install_deferred(QUIC_V1)
    assert keys.deferred == () and spaces[APPLICATION].rx is not None


def test_prepared_read_key_is_the_one_installed() -> None:
    keys, spaces, _, _ = _state()
    keys.prepare_read((AES128, b"s" * 32), QUIC_V1)
    spare = keys.spare
    keys.install((Epoch.ONE_RTT, "read", AES128, b"s" * 32), QUIC_V1)
    assert spaces[APPLICATION].rx is spare and keys.spare is None


def test_next_generation_is_derived_once() -> None:
    keys, spaces, _, _ = _state()
    keys.install((Epoch.ONE_RTT, "read", AES128, b"r" * 32), QUIC_V1)
    rx = spaces[APPLICATION].rx
    assert rx is not None
    assert keys.next_rx(rx) is keys.next_rx(rx)


def test_update_waits_for_an_acknowledgement_of_the_current_keys() -> None:
    keys, spaces, recovery, stats = _state()
    keys.install((Epoch.ONE_RTT, "read", AES128, b"r" * 32), QUIC_V1)
    keys.install((Epoch.ONE_RTT, "write", AES128, b"w" * 32), QUIC_V1)
    keys.request_update()
    assert keys.update_requested and keys.phase == 0  # nothing acknowledged yet
    recovery.on_packet_sent(SentPacket(0, 0.0, 100, True, True, APPLICATION))
    spaces[APPLICATION].next_pn = 1
    recovery.on_ack_received(APPLICATION, [(0, 1)], 0.0, 0.1, None)
    keys.maybe_update()
    assert not keys.update_requested and keys.phase == 1 and keys.phase_start_pn == 1
    assert stats.key_updates == 1 and keys.rx_previous is not None


def test_auth_failures_reach_the_integrity_limit() -> None:
    keys, _, _, _ = _state()
    keys.integrity_limit = 3
    assert [keys.on_auth_failure() for _ in range(3)] == [False, False, True]
    keys.set_limits(AES128)
    assert keys.update_limit == update_limit(AES128) == (1 << 23) * 3 // 4
