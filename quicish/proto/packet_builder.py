"""Building datagrams: which frames go into which packet, packet numbers (with skips),
the anti-amplification budget, and one header-encode + seal + record path for every
packet sent (data, lean bulk STREAM, path probe, CONNECTION_CLOSE)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ..config import Config
from ..errors import ErrorCode, wire_reason
from ..wire import frames as F
from ..wire.buffer import Buffer
from ..wire.packet import (
    PacketType,
    encode_long_header,
    encode_packet_number,
    encode_short_header,
)
from ..wire.protection import AEAD_TAG_SIZE, PacketProtector
from . import ack_frequency
from .ack_frequency import AckFrequencySender
from .built_packet import BuiltPacket
from .cid import LocalCids, PeerCids
from .idle import IdleTimer
from .keys import KeyState
from .lifecycle import CloseReason
from .pacing import Pacer
from .packet_space import APPLICATION, HANDSHAKE, INITIAL, PacketSpace
from .path import Address, Path, PathManager
from .pmtud import BASE_PLPMTU, Pmtud
from .probe_data import repeat_oldest
from .records import (
    HANDSHAKE_DONE,
    PING,
    AckRecord,
    CryptoRecord,
    HandshakeDoneRecord,
    MtuProbeRecord,
    NewConnectionIdRecord,
    OwnerHandlers,
    Record,
    RetireConnectionIdRecord,
    SentPacket,
)
from .recovery import LossRecovery
from .reply_packet import ReplyPacket, write_ack
from .stats import ConnectionStats
from .stream_burst import StreamBurst
from .stream_manager import StreamManager
from .trace import Trace

MIN_INITIAL_DATAGRAM = 1200
MAX_DATAGRAMS_PER_CALL = 64
# The smallest anti-amplification budget a datagram is built for.
MIN_BUDGET = 64

_ONE_RTT = PacketType.ONE_RTT  # (an IntEnum member read once, not per packet)
SPACE_TYPE = (PacketType.INITIAL, PacketType.HANDSHAKE, PacketType.ONE_RTT)


def next_skip(after: int, interval: int, random_bytes: Callable[[int], bytes]) -> int:
    """The next packet number to skip, at random a mean ``interval`` numbers after
    ``after`` (-1: never, when ``interval`` is 0)."""
    if not interval:
        return -1
    return after + 1 + int.from_bytes(random_bytes(4), "big") % (2 * interval)


class PacketBuilder:
    """Builds a connection's datagrams from its spaces, streams and paths; owns what waits
    to be sent that belongs to no stream or space (PING, HANDSHAKE_DONE, DATAGRAMs)."""

    __slots__ = (
        "_burst", "_idle", "_is_client", "_keys", "_local_cids", "_pacer", "_paths", "_peer_cids",
        "_pmtud_ceiling", "_pn_skip_interval", "_random", "_recovery", "_reply", "_spaces",
        "_stats", "_streams", "ack_frequency", "cc", "control_checked", "datagrams_out",
        "handshake_complete", "handshake_done_acked", "host_cid", "max_datagram_size",
        "pacer_deadline", "peer_cid", "pending_handshake_done", "pending_ping", "pmtud",
        "sealed_ahead", "spin", "token", "trace", "version",
    )  # fmt: skip

    def __init__(
        self,
        config: Config,
        *,
        is_client: bool,
        version: int,
        host_cid: bytes,
        token: bytes,
        spaces: tuple[PacketSpace, ...],
        streams: StreamManager,
        paths: PathManager,
        recovery: LossRecovery,
        pacer: Pacer,
        keys: KeyState,
        local_cids: LocalCids,
        peer_cids: PeerCids,
        idle: IdleTimer,
        stats: ConnectionStats,
        random_bytes: Callable[[int], bytes],
    ) -> None:
        self._is_client = is_client
        self._spaces = spaces
        self._streams = streams
        self._paths = paths
        self._recovery = recovery
        self.cc = recovery.cc  # (the migration swaps in a fresh one on a new path)
        self._pacer = pacer
        self._keys = keys
        self._local_cids = local_cids
        self._peer_cids = peer_cids
        self._idle = idle
        self._stats = stats
        self._random = random_bytes
        self._pn_skip_interval = config.pn_skip_interval
        # The header fields: the version, the peer's CID and ours, the Initial token.
        self.version = version
        self.peer_cid = b""
        self.host_cid = host_cid
        self.token = token  # the Initial packets' token (Retry or NEW_TOKEN)
        self.handshake_complete = False  # (probes of other paths wait for it)
        self.max_datagram_size = config.initial_datagram_size
        stats.max_datagram_size = self.max_datagram_size
        # Path MTU discovery (pmtud.py): its ceiling, and the search once it starts.
        self._pmtud_ceiling = config.max_datagram_size if config.pmtud else None
        self.pmtud: Pmtud | None = None
        self.spin = False
        self.trace: Trace | None = None  # (proto/trace.py; None: not traced)
        self.pending_ping = False  # a PING is due in the next 1-RTT packet
        self.pending_handshake_done = False
        self.handshake_done_acked = False  # the client acknowledged a HANDSHAKE_DONE
        self.datagrams_out: deque[bytes] | None = None  # DATAGRAM payloads (made on first)
        # ACK_FREQUENCY / IMMEDIATE_ACK to a peer that accepts them (proto/ack_frequency.py)
        self.ack_frequency: AckFrequencySender | None = None
        # Control frames (flow credit, limits, resets) are considered once per burst.
        self.control_checked = False
        self.pacer_deadline: float | None = None  # when the pacer releases the next packet
        # start_hello(): packets sealed ahead (with their type and payload, for the trace),
        # recorded by connect() at its own time.
        self.sealed_ahead: list[tuple[SentPacket, int, bytes | bytearray]] | None = None
        self._burst: StreamBurst | None = None  # the bulk path (made at its first use)
        self._reply: ReplyPacket | None = None  # a reply's packet (made at its first use)

    def arm_probe(self, index: int, now: float | None = None) -> None:
        """A probe timeout in space ``index`` (at ``now``): the next two packets there are
        probes, with data to repeat queued (RFC 9002 6.2.4). Before the handshake is
        confirmed every other space with ack-eliciting packets in flight is probed too, in
        the same datagrams: the peer may have the keys of only one of them (6.2.4)."""
        spaces = self._spaces
        space = spaces[index]
        if space.discarded or space.tx is None:
            # Client anti-deadlock probe before Handshake keys: re-send the Initial.
            space = spaces[INITIAL]
        self._queue_probe(space)
        if space.index != APPLICATION:
            recovery = self._recovery
            for other in spaces:
                if (
                    other is not space
                    and other.tx is not None
                    and not other.discarded
                    and recovery.ack_eliciting_in_flight(other.index)
                ):
                    self._queue_probe(other)
            return
        pmtud = self.pmtud
        if pmtud is not None and pmtud.on_pto(self._recovery.pto_count):
            self._stats.mtu_black_holes += 1  # full-size packets vanish: back to 1200
            self.set_datagram_size(BASE_PLPMTU, self._idle.last_activity if now is None else now)
        if self.ack_frequency is not None:
            self.ack_frequency.immediate_ack = True  # the probe's ACK must not be delayed

    def _queue_probe(self, space: PacketSpace) -> None:
        """Two probe packets in ``space``, with the data they repeat queued."""
        space.probes = 2
        if space.index != APPLICATION:
            space.crypto_send.requeue_unacked()
            return
        owed = not (self.handshake_done_acked or self.pending_handshake_done)
        in_flight = self._recovery.outstanding(APPLICATION)
        probed, handshake_done = repeat_oldest(in_flight, self._streams, space.crypto_send, owed)
        self._stats.stream_bytes_probed += probed
        self.pending_handshake_done |= handshake_done

    # ---- a burst ---------------------------------------------------------------------------
    def fill(self, out: list[tuple[bytes, Address]], addr: Address, now: float) -> None:
        """Append to ``out`` the datagrams congestion control, pacing and the
        anti-amplification budget allow now (up to MAX_DATAGRAMS_PER_CALL), a path MTU probe
        first (in packet number order: a probe sent after later packets would look lost),
        then the path probes that go out from the current local socket."""
        self.control_checked = False
        if self.pmtud is not None:
            mtu_probe = self._mtu_probe(now)
            if mtu_probe is not None:
                out.append((mtu_probe, addr))
        lean = False  # once only STREAM frames can follow, the lean builder takes over
        af = self.ack_frequency
        in_flight = 0 if af is None else af.before_burst(self.cc, self.max_datagram_size, now)
        while len(out) < MAX_DATAGRAMS_PER_CALL:
            if lean and self._stream_burst(out, addr, now):
                continue
            if lean:
                datagram = self.build_stream_datagram(now)
            else:  # (a reply's packet when it can be one: reply_packet.py)
                replied = (datagram := self._reply_packet(now)) is not None
                datagram = datagram or self.build_datagram(now)
            if datagram is None:
                if self.cc.packet_aware:
                    self._note_app_limited(now)
                break
            out.append((datagram, addr))
            if not lean:  # (after a reply's packet lean_ready(reply=True) still holds)
                ready = self.control_checked and not self._spaces[APPLICATION].unacked_ranges
                lean = ready if replied else self.lean_ready()
                if lean and self._streams.first_sendable() is None:
                    # (only STREAM frames could follow and none wait: a small reply's burst)
                    if self.cc.packet_aware:
                        self._note_app_limited(now)
                    break
        if af is not None and af.after_burst(in_flight, self._more_to_send, now):
            datagram = self.build_datagram(now)  # its IMMEDIATE_ACK: the ACK comes at once
            if datagram is not None:
                out.append((datagram, addr))
        for path, probe in self.probe_datagrams(now, same_socket=True):
            assert path.addr is not None
            out.append((probe, path.addr))

    def _more_to_send(self) -> bool:
        """Frames wait that are not stream data (control frames, DATAGRAMs)."""
        return self._streams.has_pending_frames() or bool(self.datagrams_out)

    def _note_app_limited(self, now: float) -> None:
        """Tell a delivery-rate sampling controller when sending stopped for want of data
        (neither the window nor the pacer held it back)."""
        in_flight = self._recovery.bytes_in_flight
        if in_flight + self.max_datagram_size > self.cc.cwnd:
            return
        if self._pacer.next_send_time(now) is not None:
            return
        self.cc.on_app_limited(in_flight)

    def probe_datagrams(self, now: float, same_socket: bool) -> list[tuple[Path, bytes]]:
        """PATH_CHALLENGE / PATH_RESPONSE datagrams for the paths other than the current
        one whose local socket is (``same_socket``) or is not the current one's."""
        out: list[tuple[Path, bytes]] = []
        others = self._paths.others
        if not others:
            return out
        local = self._paths.current.local
        for path in list(others.values()):
            if (path.local == local) == same_socket and path.addr is not None:
                datagram = self.build_probe_datagram(path, now)
                if datagram is not None:
                    out.append((path, datagram))
        return out

    def amplification_budget(self) -> int:
        return self._paths.current.amplification_budget()

    # ---- the general builder ---------------------------------------------------------------
    def build_datagram(self, now: float) -> bytes | None:
        """The next datagram: one packet per space with something to say, coalesced."""
        budget = self.amplification_budget()
        size_limit = min(self.max_datagram_size, budget)
        self._recovery.amplification_limited = budget < self.max_datagram_size
        if size_limit < MIN_BUDGET:
            return None
        parts: list[BuiltPacket] = []
        used = 0
        has_initial = has_handshake = any_eliciting = False
        congestion_blocked = self._recovery.bytes_in_flight >= self.cc.cwnd
        if not congestion_blocked:
            release = self._pacer.next_send_time(now)
            if release is not None:
                # Paced: only ACKs and probes go now; new data waits for the release time.
                self.pacer_deadline = release
                congestion_blocked = True
        is_client = self._is_client
        for space in self._spaces:
            if space.discarded:
                continue
            tx = space.tx
            ptype: int = SPACE_TYPE[space.index]
            if tx is None:
                zero_rtt_tx = self._keys.zero_rtt_tx
                if space.index != APPLICATION or zero_rtt_tx is None or not is_client:
                    continue
                tx = zero_rtt_tx
                ptype = PacketType.ZERO_RTT
            elif space.index != APPLICATION and not (
                space.unacked_ranges or space.probes or space.crypto_send.has_pending
            ):
                continue  # nothing to say in this handshake space
            elif (
                space.index == INITIAL
                and is_client
                and not (space.probes or space.crypto_send.has_pending)
                and self._spaces[HANDSHAKE].tx is not None
                and self._spaces[HANDSHAKE].crypto_send.has_pending
            ):
                # Only an ACK to say, in a datagram whose Handshake packet makes both sides
                # discard their Initial keys (RFC 9001 4.9.1): the ACK would be thrown away.
                continue
            elif space.index == INITIAL and size_limit < MIN_INITIAL_DATAGRAM:
                # A datagram with an Initial is padded to 1200 bytes (RFC 9000 14.1): one the
                # anti-amplification budget cannot carry waits for the client's next datagram.
                continue
            built = self._build_payload(
                space, tx, ptype, size_limit - used, now, congestion_blocked
            )
            if built is None:
                continue
            used += built.header_len + len(built.payload) + AEAD_TAG_SIZE
            parts.append(built)
            any_eliciting |= built.eliciting
            if ptype == PacketType.INITIAL:
                has_initial = True
            elif ptype == PacketType.HANDSHAKE:
                has_handshake = True
            elif ptype == PacketType.ONE_RTT:
                break  # a short header runs to the end of the datagram
        if not parts:
            return None
        if has_initial and (is_client or any_eliciting) and used < MIN_INITIAL_DATAGRAM:
            # RFC 9000 14.1: datagrams with ack-eliciting Initials are padded to 1200 bytes.
            parts[-1].payload.extend(bytes(MIN_INITIAL_DATAGRAM - used))
        if len(parts) == 1:
            out = self.seal_built(parts[0], now)
        else:
            out = b"".join([self.seal_built(built, now) for built in parts])
        self._count_datagram(out, self._paths.current)
        if has_handshake and is_client and self._spaces[INITIAL].discard():
            self._recovery.discard_space(INITIAL, for_good=True)  # RFC 9001 4.9.1
        return out

    def _count_datagram(self, datagram: bytes, path: Path) -> None:
        size = len(datagram)
        path.bytes_sent += size
        stats = self._stats
        stats.datagrams_sent += 1
        stats.bytes_sent += size

    def _header_length(self, ptype: int, pn_length: int) -> int:
        if ptype == PacketType.ONE_RTT:
            return 1 + len(self.peer_cid) + pn_length
        token_field = 0
        if ptype == PacketType.INITIAL:
            token_len = len(self.token)
            token_field = (1 + (token_len > 63) + 2 * (token_len > 16383)) + token_len
        return 7 + len(self.peer_cid) + len(self.host_cid) + token_field + 2 + pn_length

    def _build_payload(
        self,
        space: PacketSpace,
        tx: PacketProtector,
        ptype: int,
        budget: int,
        now: float,
        congestion_blocked: bool,
    ) -> BuiltPacket | None:
        """The plaintext of the next packet in ``space``, or None when there is nothing."""
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, self._recovery.largest_acked(space.index))
        header_len = self._header_length(ptype, pn_length)
        room = budget - header_len - AEAD_TAG_SIZE
        if room < 32:
            return None
        buf = Buffer()
        records: list[Record] = []
        eliciting = False
        probing = space.probes > 0
        app = space.index == APPLICATION
        if (
            ptype != PacketType.ZERO_RTT
            and space.unacked_ranges
            and (
                space.wants_ack(now)
                or probing
                or self._has_eliciting_data(space, congestion_blocked)
            )
        ):
            write_ack(space, buf, records, app, now)
        path = self._paths.current
        if (
            (path.responses or path.challenge_due)
            and ptype == PacketType.ONE_RTT
            and (probing or not congestion_blocked)
        ):
            # Path validation frames, within the congestion window; a padded datagram
            # (RFC 9000 8.2) has room for nothing else.
            eliciting, padded = self._write_path_frames(path, buf, room, now)
            if padded:
                return BuiltPacket(
                    space,
                    tx,
                    ptype,
                    pn,
                    truncated,
                    pn_length,
                    header_len,
                    buf.take(),
                    records,
                    eliciting,
                )
        if congestion_blocked and not probing:
            if not buf.written:
                return None
            return BuiltPacket(
                space, tx, ptype, pn, truncated, pn_length, header_len, buf.take(), records, False
            )
        # CRYPTO data (handshake messages, and NewSessionTicket in 1-RTT).
        crypto = space.crypto_send
        if probing and not app:
            crypto.requeue_unacked()  # every probe carries the unacknowledged handshake data
        if crypto.has_pending:
            while True:
                avail = room - buf.written - 8
                if avail < 16:
                    break
                chunk = crypto.next_frame(avail, 1 << 62)
                if chunk is None:
                    break
                offset, data, _fin = chunk
                F.encode_frame(buf, F.CryptoFrame(offset, bytes(data)))
                records.append(CryptoRecord(space.index, offset, len(data)))
                eliciting = True
        if app:
            if ptype != PacketType.ZERO_RTT:
                if self.pending_ping:
                    F.encode_frame(buf, F.PingFrame())
                    records.append(PING)
                    self.pending_ping = False
                    eliciting = True
                if self.pending_handshake_done and not self._is_client:
                    F.encode_frame(buf, F.HandshakeDoneFrame())
                    records.append(HANDSHAKE_DONE)
                    self.pending_handshake_done = False
                    eliciting = True
                if (self._local_cids.pending or self._peer_cids.pending_retire) and (
                    buf.written or not self._is_client
                ):
                    # A client's connection ID frames only ride along with a packet that
                    # goes out anyway (at the latest the ACK owed within max_ack_delay).
                    eliciting |= self._write_cid_frames(buf, room, records)
                if not self.control_checked:
                    # Control frames (flow credit, limits, resets) are checked once per burst.
                    self.control_checked = True
                    eliciting |= self._streams.write_control_frames(
                        buf, room, records, now, self._recovery.rtt.smoothed_rtt
                    )
                af = self.ack_frequency
                if af is not None and af.has_pending and ptype == _ONE_RTT:
                    eliciting |= af.write(buf, room, records)
                out = self.datagrams_out
                while out and room - buf.written > len(out[0]) + 4:
                    F.encode_frame(buf, F.DatagramFrame(out.popleft()))
                    eliciting = True
            eliciting |= self._streams.write_stream_frames(buf, room, records)
        if probing:
            if not eliciting:
                F.encode_frame(buf, F.PingFrame())
                records.append(PING)
                eliciting = True
            space.probes -= 1
        if not buf.written:
            return None
        return BuiltPacket(
            space, tx, ptype, pn, truncated, pn_length, header_len, buf.take(), records, eliciting
        )

    def _has_eliciting_data(self, space: PacketSpace, congestion_blocked: bool) -> bool:
        if congestion_blocked:
            return False
        if space.crypto_send.has_pending:
            return True
        if space.index != APPLICATION:
            return False
        return (
            self.pending_handshake_done
            or self.pending_ping
            or bool(self.datagrams_out)
            or self._streams.has_pending_frames()
        )

    def _write_cid_frames(self, buf: Buffer, room: int, records: list[Record]) -> bool:
        wrote = False
        local = self._local_cids
        while local.pending and room - buf.written >= 48:
            seq = local.pending.pop(0)
            frame = local.frame_for(seq)
            if frame is not None:
                F.encode_frame(buf, frame)
                records.append(NewConnectionIdRecord(seq))
                wrote = True
        peer = self._peer_cids
        while peer.pending_retire and room - buf.written >= 10:
            seq = peer.next_retire()
            F.encode_frame(buf, F.RetireConnectionIdFrame(seq))
            records.append(RetireConnectionIdRecord(seq))
            wrote = True
        return wrote

    def _write_path_frames(
        self, path: Path, buf: Buffer, room: int, now: float
    ) -> tuple[bool, bool]:
        """The PATH_RESPONSE and a due PATH_CHALLENGE for ``path``, padded to ``room`` when
        the path is being validated (RFC 9000 8.2: such datagrams are expanded to 1200 bytes
        within the budget); returns (wrote anything, padded)."""
        wrote = pad = False
        if path.responses and room - buf.written >= 9:
            F.encode_frame(buf, F.PathResponseFrame(path.responses[-1]))
            path.responses = ()
            wrote = True
            pad = path.pad_response
        if path.challenge_due and room - buf.written >= 9:
            data = self._paths.next_challenge(path, now, self._recovery.pto_interval())
            F.encode_frame(buf, F.PathChallengeFrame(data))
            wrote = pad = True
        if pad and room > buf.written:
            buf.push_bytes(bytes(room - buf.written))
        return wrote, pad

    # ---- the lean bulk path ----------------------------------------------------------------
    def lean_ready(self, reply: bool = False) -> bool:
        """True when the rest of this burst can only be 1-RTT packets of STREAM frames: the
        handshake spaces are gone, the path is validated, control frames were considered
        for this burst, and no ACK, probe, CRYPTO, PING, HANDSHAKE_DONE, connection ID,
        DATAGRAM or path frame is waiting; ``reply``: but for an ACK and control frames."""
        spaces = self._spaces
        app = spaces[APPLICATION]
        path = self._paths.current
        return bool(
            spaces[HANDSHAKE].discarded
            and spaces[INITIAL].discarded
            and app.tx is not None
            and path.validated
            and (reply or (self.control_checked and not app.unacked_ranges))
            and not (app.probes or app.crypto_send.has_pending)
            and not (self.pending_ping or self.pending_handshake_done or self.datagrams_out)
            and (self.ack_frequency is None or not self.ack_frequency.has_pending)
            and not (self._local_cids.pending or self._peer_cids.pending_retire)
            and not (path.responses or path.challenge_due)
        )

    def _reply_packet(self, now: float) -> bytes | None:  # (while lean_ready(reply=True))
        if self._reply is None:
            self._reply = ReplyPacket(
                self._spaces[APPLICATION], self._streams, self._recovery, self._pacer, self._paths
            )
        return self._reply.build(self, now)

    def _stream_burst(self, out: list[tuple[bytes, Address]], addr: Address, now: float) -> bool:
        """Full STREAM packets in one C call while they are all alike (stream_burst.py)."""
        burst = self._burst
        if burst is None:
            tx = self._spaces[APPLICATION].tx
            if tx is None or not tx.accelerated:  # (else the lean builder: ChaCha20)
                return False
            burst = self._burst = StreamBurst(
                self._spaces[APPLICATION], self._streams, self._recovery, self._pacer,
                self._keys, self._paths, self._idle, self._stats,
            )  # fmt: skip
        if not burst.fill(self, out, addr, now, MAX_DATAGRAMS_PER_CALL - len(out)):
            return False
        space = self._spaces[APPLICATION]
        if space.next_pn == space.skip_pn:
            space.next_pn = self._skip_packet_number(space, space.next_pn)
        return True

    def build_stream_datagram(self, now: float) -> bytes | None:
        """The bulk-transfer path, valid while :meth:`lean_ready` holds: one 1-RTT packet
        of STREAM frames (what :meth:`build_datagram` builds in that state, with less
        bookkeeping: no BuiltPacket, no per-space walk), or None when congestion control,
        pacing or the streams say no."""
        recovery = self._recovery
        if recovery.bytes_in_flight >= self.cc.cwnd:
            return None
        release = self._pacer.next_send_time(now)
        if release is not None:
            self.pacer_deadline = release
            return None
        space = self._spaces[APPLICATION]
        tx = space.tx
        assert tx is not None
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, recovery.largest_acked(APPLICATION))
        cid = self.peer_cid
        buf = Buffer()
        records: list[Record] = []
        room = self.max_datagram_size - (1 + len(cid) + pn_length) - AEAD_TAG_SIZE
        if not self._streams.write_stream_frames(buf, room, records):
            return None
        payload = buf.take()
        out = self._seal(
            space, tx, _ONE_RTT, pn, truncated, pn_length, payload, records, True, True, now
        )
        size = len(out)  # (_count_datagram inlined: once per packet of a bulk transfer)
        self._paths.current.bytes_sent += size
        stats = self._stats
        stats.datagrams_sent += 1
        stats.bytes_sent += size
        if self.trace is not None:
            self.trace.stream_sent(now, pn, size, payload, records)
        return out

    # ---- path MTU discovery (pmtud.py) -----------------------------------------------------
    def start_pmtud(self, peer_limit: int) -> None:
        """The handshake is confirmed: search for the path MTU, up to our ceiling and the
        peer's max_udp_payload_size (nothing when discovery is off or the ceiling is 1200:
        then no search object, no cost)."""
        ceiling = self._pmtud_ceiling
        if ceiling is not None and self.pmtud is None and min(ceiling, peer_limit) > BASE_PLPMTU:
            self.pmtud = Pmtud(min(ceiling, peer_limit))

    def restart_pmtud(self) -> None:
        """A new path: back to 1200 bytes and search again."""
        if self.pmtud is not None:
            self.pmtud.restart()
            self.set_datagram_size(BASE_PLPMTU, self._idle.last_activity)

    def queue_datagram(self, data: bytes) -> None:
        """A DATAGRAM frame's payload to send (the queue is made for the first one: most
        connections never send any)."""
        if self.datagrams_out is None:
            self.datagrams_out = deque()
        self.datagrams_out.append(data)

    def set_datagram_size(self, size: int, now: float, done: bool = False) -> None:
        """Send datagrams of ``size`` bytes from ``now`` on: the builder, the pacer's burst
        and the congestion controller's segment size move together (its window in bytes
        stays)."""
        old = self.max_datagram_size
        self.max_datagram_size = self._pacer.max_datagram_size = size
        self.cc.set_max_datagram_size(size)
        if size < old and self.datagrams_out is not None:
            # Queued DATAGRAMs that no longer fit (Connection.send_datagram's rule) would
            # block the queue: unreliable, they are dropped.
            fits = [d for d in self.datagrams_out if len(d) + 8 <= size - 40]
            self.datagrams_out = deque(fits)
        self._stats.max_datagram_size = size
        if self.trace is not None and old != size:
            self.trace.mtu_updated(now, old, size, done)

    def _mtu_probe(self, now: float) -> bytes | None:
        """The probe the search wants now, if any: when the window has room for it (not
        paced: one packet, charged to the pacer like any other) and a probe's worth of new
        stream data waits (an idle connection or a small answer has no use for the size)."""
        pmtud = self.pmtud
        assert pmtud is not None
        size = pmtud.next_probe(now)
        if size is None or self._recovery.bytes_in_flight + size > self.cc.cwnd:
            return None
        stream = self._streams.first_sendable()
        send = None if stream is None else stream.send
        unsent = 0 if send is None else send.write_offset - send.send_offset
        if unsent < size or not self._paths.current.validated:
            return None
        space = self._spaces[APPLICATION]
        tx = space.tx
        if tx is None:
            return None
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, self._recovery.largest_acked(APPLICATION))
        payload = bytearray(size - (1 + len(self.peer_cid) + pn_length) - AEAD_TAG_SIZE)
        payload[0] = 0x01  # PING, then PADDING (zeros) to the size probed
        records: list[Record] = [MtuProbeRecord(size)]
        packet = self._seal(
            space, tx, _ONE_RTT, pn, truncated, pn_length, payload, records, True, True, now
        )
        if self.trace is not None:
            self.trace.packet_sent(now, _ONE_RTT, pn, len(packet), payload, records)
        self._count_datagram(packet, self._paths.current)
        self._stats.mtu_probes_sent += 1
        pmtud.on_probe_sent(size, now)
        return packet

    def _on_mtu_probe_acked(self, rec: MtuProbeRecord) -> None:
        pmtud = self.pmtud
        if pmtud is not None:
            size = pmtud.on_probe_acked(rec.size)
            if size is not None:  # (acknowledged by the packet received now)
                self.set_datagram_size(size, self._idle.last_activity, pmtud.done)

    def _on_mtu_probe_lost(self, rec: MtuProbeRecord) -> None:
        self._stats.mtu_probes_lost += 1
        pmtud = self.pmtud
        if pmtud is not None:
            pmtud.on_probe_lost(rec.size)

    # ---- path probes and CONNECTION_CLOSE --------------------------------------------------
    def build_probe_datagram(self, path: Path, now: float) -> bytes | None:
        """A 1-RTT packet with PATH_CHALLENGE / PATH_RESPONSE for a path we do not send on."""
        space = self._spaces[APPLICATION]
        tx = space.tx
        if not path.has_output() or tx is None or not self.handshake_complete:
            return None
        budget = (1 << 62) if self._is_client else path.amplification_budget()
        size = min(self.max_datagram_size, budget)
        if path.cid_seq is None and not self._is_client:
            path.cid_seq = self._peer_cids.reserve()  # RFC 9000 9.5: a CID per destination
        cid = self.peer_cid
        if path.cid_seq is not None:
            cid = self._peer_cids.cid_of(path.cid_seq) or cid
        pn = space.next_pn
        truncated, pn_length = encode_packet_number(pn, self._recovery.largest_acked(APPLICATION))
        room = size - (1 + len(cid) + pn_length) - AEAD_TAG_SIZE
        if room < 16:
            return None
        buf = Buffer()
        if not self._write_path_frames(path, buf, room, now)[0]:
            return None
        # Not in flight: probes on another path do not count against this path's window.
        payload = buf.take()
        packet = self._seal(
            space, tx, _ONE_RTT, pn, truncated, pn_length, payload, [], False, False, now, cid, path
        )
        if self.trace is not None:
            self.trace.packet_sent(now, _ONE_RTT, pn, len(packet), payload, [])
        self._count_datagram(packet, path)
        return packet

    def build_close_datagram(self, close: CloseReason, now: float | None = None) -> bytes:
        """CONNECTION_CLOSE in every space with keys (RFC 9000 10.2.3), within the
        anti-amplification budget (else empty); sent at ``now`` (default: the last
        activity)."""
        code, frame_type, reason, application = (
            close.code,
            close.frame_type,
            close.reason,
            close.application,
        )
        # A transport error goes out with a fixed phrase for its code (the detail stays in
        # the local ConnectionTerminated); an application's own reason goes as given.
        phrase = "" if application else wire_reason(code)
        if now is None:
            now = self._idle.last_activity
        out = bytearray()
        for space in self._spaces:
            if space.tx is None or space.discarded:
                continue
            ptype = SPACE_TYPE[space.index]
            # RFC 9000 10.2.3: before 1-RTT, an application close becomes APPLICATION_ERROR.
            app = application and ptype == PacketType.ONE_RTT
            frame = F.ConnectionCloseFrame(
                code if app or not application else ErrorCode.APPLICATION_ERROR,
                None if app else (frame_type or 0),
                reason if app else phrase,
                app,
            )
            buf = Buffer()
            F.encode_frame(buf, frame)
            payload = bytearray(buf.data())
            if len(payload) < 4:
                payload.extend(bytes(4 - len(payload)))
            if ptype == PacketType.INITIAL and self._is_client:
                payload.extend(bytes(max(0, MIN_INITIAL_DATAGRAM - 100 - len(payload))))
            pn = space.next_pn
            truncated, pn_length = encode_packet_number(
                pn, self._recovery.largest_acked(space.index)
            )
            built = BuiltPacket(
                space,
                space.tx,
                ptype,
                pn,
                truncated,
                pn_length,
                self._header_length(ptype, pn_length),
                payload,
                [],
                False,
            )
            out += self.seal_built(built, now)
        if len(out) > self.amplification_budget():
            return b""  # an unvalidated address gets no more than 3x what it sent (RFC 9000 8)
        self._paths.current.bytes_sent += len(out)
        return bytes(out)

    # ---- sealing and recording -------------------------------------------------------------
    def seal_built(self, built: BuiltPacket, now: float) -> bytes:
        """Seal a packet of the general builder (in flight unless it is only an ACK)."""
        records = built.records
        eliciting = built.eliciting
        in_flight = eliciting or len(records) != 1 or type(records[0]) is not AckRecord
        packet = self._seal(
            built.space,
            built.tx,
            built.ptype,
            built.pn,
            built.truncated,
            built.pn_length,
            built.payload,
            records,
            eliciting,
            in_flight,
            now,
        )
        if self.trace is not None and self.sealed_ahead is None:  # (traced when it leaves)
            self.trace.packet_sent(now, built.ptype, built.pn, len(packet), built.payload, records)
        return packet

    def _seal(
        self,
        space: PacketSpace,
        tx: PacketProtector,
        ptype: int,
        pn: int,
        truncated: int,
        pn_length: int,
        payload: bytes | bytearray,
        records: list[Record],
        eliciting: bool,
        in_flight: bool,
        now: float,
        cid: bytes | None = None,
        probe_path: Path | None = None,
    ) -> bytes:
        """The one path every packet takes: next packet number (skipping one now and
        then), header, AEAD and header protection, then recorded as sent. (Its callers
        trace the packet: the bulk path the cheaper way.)"""
        following = pn + 1
        if following == space.skip_pn:
            following = self._skip_packet_number(space, following)
        space.next_pn = following
        if ptype == _ONE_RTT:
            header = encode_short_header(
                self.peer_cid if cid is None else cid,
                truncated,
                pn_length,
                self.spin,
                bool(self._keys.phase),
            )
        else:
            header = encode_long_header(
                PacketType(ptype),
                self.version,
                self.peer_cid,
                self.host_cid,
                self.token if ptype == PacketType.INITIAL else b"",
                len(payload) + AEAD_TAG_SIZE,
                truncated,
                pn_length,
            )
        packet = tx.seal_packet(header, payload, pn)
        sent = SentPacket(pn, now, len(packet), eliciting, in_flight, space.index, records)
        if self.sealed_ahead is None:
            self.record_sent(sent, probe_path)
        else:  # start_hello(): connect() records it, at its own time, when it is really sent
            self.sealed_ahead.append((sent, ptype, payload))
        return packet

    def send_sealed_ahead(self, now: float) -> None:
        """connect(): the packets start_hello() sealed ahead leave now."""
        sealed, self.sealed_ahead = self.sealed_ahead, None
        for sent, ptype, payload in sealed or ():
            sent.sent_time = now
            self.record_sent(sent)
            if self.trace is not None:
                self.trace.packet_sent(now, ptype, sent.pn, sent.size, payload, sent.frames)

    def _skip_packet_number(self, space: PacketSpace, pn: int) -> int:
        """RFC 9000 21.4: ``pn`` is never sent, so a peer acknowledging it acknowledges
        what it did not receive (optimistic ACK); returns the packet number to use next."""
        self._recovery.on_packet_number_skipped(space.index, pn)
        space.skip_pn = next_skip(pn + 1, self._pn_skip_interval, self._random)
        return pn + 1

    def record_sent(self, sent: SentPacket, probe_path: Path | None = None) -> None:
        """Tell recovery, congestion control, the pacer and the idle timer that a packet
        left at its ``sent_time`` (on ``probe_path``, for a probe of another path)."""
        now, size = sent.sent_time, sent.size
        self._recovery.on_packet_sent(sent)
        if sent.in_flight:
            self.cc.on_packet_sent(size, now)
            self._pacer.on_packet_sent(size, now)
        idle = self._idle
        if sent.ack_eliciting and idle.restart_pending:  # (IdleTimer.on_eliciting_sent inlined)
            idle.last_activity = now
            idle.restart_pending = False
        self._stats.packets_sent += 1


#: The answers to a builder's records (``RecordTable.register_owner``): HANDSHAKE_DONE goes
#: again when lost, until one is acknowledged; MTU probes to the search; ACK_FREQUENCY.
RECORD_HANDLERS: OwnerHandlers = {
    **ack_frequency.RECORD_HANDLERS,
    HandshakeDoneRecord: (
        lambda b, rec: setattr(b, "handshake_done_acked", True),
        lambda b, rec: setattr(b, "pending_handshake_done", not b.handshake_done_acked),
    ),
    MtuProbeRecord: (PacketBuilder._on_mtu_probe_acked, PacketBuilder._on_mtu_probe_lost),
}
