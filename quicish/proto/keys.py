"""Packet protection keys beyond the per-space ones: installation (and deferral), 0-RTT
keys, 1-RTT key update and the AEAD limits (RFC 9001 sections 4.9, 5, 6)."""

from __future__ import annotations

import logging

from ..errors import DecryptionError, ErrorCode, ProtocolError
from ..tls.engine import Epoch
from ..wire.protection import PacketProtector, confidentiality_limit, integrity_limit
from .packet_space import APPLICATION, HANDSHAKE, INITIAL, PacketSpace
from .recovery import LossRecovery
from .stats import ConnectionStats

logger = logging.getLogger("quicish")

EPOCH_SPACE: dict[int, int] = {
    Epoch.INITIAL: INITIAL,
    Epoch.HANDSHAKE: HANDSHAKE,
    Epoch.ONE_RTT: APPLICATION,
}

# A TLS secret handed over: (epoch, "read" or "write", cipher suite, secret).
Secret = tuple[Epoch, str, int, bytes]


def update_limit(suite: int) -> int:
    """RFC 9001 6.6: packets one key may protect before an update (a margin below the
    confidentiality limit of ``suite``)."""
    return confidentiality_limit(suite) * 3 // 4


class KeyState:
    """The connection's key schedule state: installs TLS secrets into the packet spaces,
    keeps the 0-RTT keys, runs 1-RTT key updates and counts against the AEAD limits."""

    __slots__ = (
        "_recovery", "_rx_next", "_spaces", "_stats", "auth_failures", "deferred",
        "integrity_limit", "phase", "phase_start_pn", "remote_update", "rx_previous", "spare",
        "update_limit", "update_requested", "zero_rtt_rx", "zero_rtt_rx_until", "zero_rtt_tx",
    )  # fmt: skip

    def __init__(
        self, spaces: tuple[PacketSpace, ...], recovery: LossRecovery, stats: ConnectionStats
    ) -> None:
        self._spaces = spaces
        self._recovery = recovery
        self._stats = stats
        self.zero_rtt_tx: PacketProtector | None = None
        self.zero_rtt_rx: PacketProtector | None = None
        # Server: when the 0-RTT read key goes (3 PTO after the handshake, RFC 9001 4.9.3).
        self.zero_rtt_rx_until: float | None = None
        # Server with split_first_flight: keys whose first use is a round trip away (the
        # handshake read key, the 1-RTT write key), installed by prepare() or first need.
        self.deferred: tuple[Secret, ...] = ()  # (a tuple: the empty one is shared)
        # Server: the 1-RTT read key made by prepare() before the client's Finished verifies
        # (installed only then, when TLS hands over the same secret).
        self.spare: PacketProtector | None = None
        self.phase = 0  # the 1-RTT key phase bit we send
        self.remote_update = False  # the last key update was the peer's (for the trace)
        self.phase_start_pn = 0  # first application packet number sent with the current keys
        self.update_requested = False
        # Set from the negotiated suite at the handshake (set_limits).
        self.update_limit = update_limit(0x1301)
        self.integrity_limit = integrity_limit(0x1301)
        self.auth_failures = 0  # 1-RTT packets that failed authentication
        self.rx_previous: PacketProtector | None = None  # 1-RTT keys before the last update
        # The 1-RTT read keys and their next generation, derived once per generation (at an
        # update, in prepare() or at the first use) and not per packet with a flipped key
        # phase: a forged packet must cost no key derivation (RFC 9001 sections 6.3, 9.5).
        self._rx_next: tuple[PacketProtector, PacketProtector] | None = None

    # ---- installation ----------------------------------------------------------------------
    def install(self, secret: Secret, version: int) -> None:
        """Install one secret TLS handed over (the spare read key if it is the same)."""
        epoch, secret_dir, suite, raw = secret
        spare = self.spare
        if spare is not None and (spare.secret, spare.suite) == (raw, suite):
            protector, self.spare = spare, None
        else:
            protector = PacketProtector.from_secret(suite, raw, version)
        if epoch == Epoch.ZERO_RTT:
            if secret_dir == "write":
                self.zero_rtt_tx = protector
            else:
                self.zero_rtt_rx = protector
            return
        space = self._spaces[EPOCH_SPACE[epoch]]
        if secret_dir == "write":
            space.tx = protector
        else:
            space.rx = protector
        if epoch == Epoch.HANDSHAKE:
            self._recovery.has_handshake_keys = True

    def install_deferred(self, version: int) -> None:
        keys, self.deferred = self.deferred, ()
        for key in keys:
            self.install(key, version)

    def prepare_read(self, upcoming: tuple[int, bytes], version: int) -> None:
        """Server: make the 1-RTT read key (and its next generation) ahead of need."""
        spare = PacketProtector.from_secret(*upcoming, version)
        self.spare = spare
        self.next_rx(spare)

    def set_limits(self, suite: int) -> None:
        """The AEAD limits of the negotiated suite (RFC 9001 6.6)."""
        self.update_limit = update_limit(suite)
        self.integrity_limit = integrity_limit(suite)

    # ---- 0-RTT -----------------------------------------------------------------------------
    def zero_rtt_read(self, now: float) -> PacketProtector | None:
        """The 0-RTT read key, discarded first if its time is over."""
        until = self.zero_rtt_rx_until
        if until is not None and now >= until:
            self.discard_zero_rtt_rx()
        return self.zero_rtt_rx

    def discard_zero_rtt_rx(self) -> None:
        self.zero_rtt_rx = None
        self.zero_rtt_rx_until = None

    # ---- key update (RFC 9001 section 6) ---------------------------------------------------
    def request_update(self) -> None:
        self.update_requested = True
        self.maybe_update()

    def maybe_update(self) -> None:
        """Update the 1-RTT keys if requested and the peer acknowledged a packet sent with
        the current ones (RFC 9001 6.1)."""
        space = self._spaces[APPLICATION]
        largest = self._recovery.largest_acked(APPLICATION)
        if largest is None or largest < self.phase_start_pn:
            return  # the peer has not acknowledged anything sent with the current keys
        if space.tx is None or space.rx is None:
            return
        self.update_requested = False
        self.rx_previous = space.rx
        space.tx = space.tx.next_generation()
        space.rx = self.next_rx(space.rx)
        self.phase ^= 1
        self.phase_start_pn = space.next_pn
        self._stats.key_updates += 1
        self.remote_update = False
        self.next_rx(space.rx)  # ahead of the next update (or of forgeries)

    def auto_update(self, confirmed: bool) -> None:
        """The current 1-RTT key neared its confidentiality limit: update it (as soon as
        the previous update is acknowledged)."""
        space = self._spaces[APPLICATION]
        if confirmed and space.tx is not None and not self.update_requested:
            logger.debug("key update: %d packets under one key", space.next_pn)
            self.update_requested = True
            self.maybe_update()

    def next_rx(self, rx: PacketProtector) -> PacketProtector:
        """The generation after the read keys ``rx``, derived at most once."""
        cached = self._rx_next
        if cached is None or cached[0] is not rx:
            cached = self._rx_next = (rx, rx.next_generation())
        return cached[1]

    # ---- opening 1-RTT packets -------------------------------------------------------------
    def open_one_rtt(
        self, packet: memoryview, pn_offset: int, space: PacketSpace, confirmed: bool
    ) -> tuple[bytes, bytes, int]:
        """Open a 1-RTT packet: with the current keys, the previous generation (a late
        packet) or the next one (the peer started a key update, which we follow)."""
        rx = space.rx
        assert rx is not None
        try:  # the common case: current keys (one header-protection pass, one AEAD open)
            return rx.open_packet(packet, pn_offset, space.largest_received)
        except DecryptionError:
            plain_header = rx.remove_header_protection(packet, pn_offset)[0]
            if (plain_header[0] >> 2) & 1 == self.phase:
                raise
        previous = self.rx_previous
        if previous is not None:
            try:  # a late packet from before the last key update
                return previous.open_packet(packet, pn_offset, space.largest_received)
            except DecryptionError:
                pass
        # The peer started a key update (RFC 9001 section 6.2): try the next generation,
        # made once per generation, not per packet (RFC 9001 9.5: no timing signal).
        candidate = self.next_rx(rx)
        result = candidate.open_packet(packet, pn_offset, space.largest_received)
        if not confirmed:
            raise ProtocolError(ErrorCode.KEY_UPDATE_ERROR, "key update before confirmation")
        if self._stats.key_updates and space.next_pn == self.phase_start_pn:
            # RFC 9001 6.2: a second update before we sent anything (so no acknowledgement
            # of the first) with the keys of the first.
            raise ProtocolError(ErrorCode.KEY_UPDATE_ERROR, "consecutive key updates")
        self.rx_previous = rx
        space.rx = candidate
        if space.tx is not None:
            space.tx = space.tx.next_generation()
        self.phase ^= 1
        self.phase_start_pn = space.next_pn
        self._stats.key_updates += 1
        self.remote_update = True
        self.next_rx(candidate)  # ahead of the next update (or of forgeries)
        return result

    def on_auth_failure(self) -> bool:
        """A 1-RTT packet failed authentication: True once the integrity limit is reached
        (RFC 9001 6.6: too many forgeries tried against 1-RTT keys)."""
        self.auth_failures += 1
        return self.auth_failures >= self.integrity_limit
