"""Turn a tap recording (plus the server's TLS key log) into per-connection facts.

What is read without keys: long headers (versions, Retry, tokens, 0-RTT packet counts),
Initial packets (ClientHello/ServerHello: offered and chosen cipher suites, PSK, early data,
transport parameters). With the server's SSLKEYLOGFILE: Handshake packets
(EncryptedExtensions), 0-RTT and 1-RTT packets (STREAM, PATH_CHALLENGE/PATH_RESPONSE,
ACK with ECN counts, MAX_STREAMS, HANDSHAKE_DONE, CONNECTION_CLOSE, key phase changes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .quicwire import (
    V1,
    Keys,
    Packet,
    WireError,
    initial_keys,
    parse_datagram,
    walk_frames,
)
from .tap import Record
from .tlsview import (
    CLIENT_HELLO,
    ENCRYPTED_EXTENSIONS,
    SERVER_HELLO,
    CryptoStream,
    Hello,
    parse_message,
)

KeyLog = dict[bytes, dict[str, bytes]]


def parse_keylog(text: str) -> KeyLog:
    """SSLKEYLOGFILE lines -> {client_random: {label: secret}}."""
    out: KeyLog = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or line.startswith("#"):
            continue
        try:
            out.setdefault(bytes.fromhex(parts[1]), {})[parts[0]] = bytes.fromhex(parts[2])
        except ValueError:
            continue
    return out


@dataclass
class PathEvent:
    t: float
    to_server: bool
    session: int
    kind: str  # "challenge" or "response"
    data: bytes


@dataclass
class Conn:
    """What one connection did on the wire."""

    index: int
    key_dcid: bytes
    first_t: float
    client_cids: set[bytes] = field(default_factory=set)
    server_cids: set[bytes] = field(default_factory=set)
    sessions: set[int] = field(default_factory=set)
    client_versions: list[int] = field(default_factory=list)
    server_versions: list[int] = field(default_factory=list)
    retry_scid: bytes | None = None
    retry_token: bytes | None = None
    retry_token_echoed: bool = False
    client_hello: Hello | None = None
    server_hello: Hello | None = None
    encrypted_extensions: Hello | None = None
    zero_rtt_packets: int = 0
    requests_0rtt: set[int] = field(default_factory=set)
    requests_1rtt: set[int] = field(default_factory=set)
    path_events: list[PathEvent] = field(default_factory=list)
    ack_ecn_ect0: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})
    closes: list[tuple[float, bool, int, int]] = field(default_factory=list)  # t, dir, type, code
    max_streams_bidi: int = 0  # largest MAX_STREAMS (bidi) the server sent
    handshake_done_t: float | None = None
    first_server_initial_t: float | None = None
    first_client_handshake_t: float | None = None
    stream_bytes_to_client: Counter[int] = field(default_factory=Counter)  # per session
    last_stream_to_client: tuple[float, int] | None = None  # (t, session)
    key_updates: dict[bool, list[float]] = field(default_factory=lambda: {True: [], False: []})
    decrypted: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    # working state
    _crypto: dict[tuple[bool, str], CryptoStream] = field(default_factory=dict, repr=False)
    _initial: dict[int, tuple[Keys, Keys]] = field(default_factory=dict, repr=False)
    _keys: dict[tuple[str, bool, int], Keys] = field(default_factory=dict, repr=False)
    _gens: dict[bool, list[Keys]] = field(default_factory=lambda: {True: [], False: []}, repr=False)
    _gen: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0}, repr=False)
    _largest: dict[tuple[bool, str], int] = field(default_factory=dict, repr=False)
    _pending: list[tuple[Record, Packet]] = field(default_factory=list, repr=False)

    @property
    def client_random(self) -> bytes | None:
        return self.client_hello.random if self.client_hello else None

    @property
    def resumed(self) -> bool:
        return bool(self.server_hello and self.server_hello.has_psk)

    @property
    def early_data_accepted(self) -> bool:
        return bool(self.encrypted_extensions and self.encrypted_extensions.has_early_data)

    @property
    def negotiated_version(self) -> int:
        return self.server_versions[-1] if self.server_versions else V1

    @property
    def handshake_rtt(self) -> float | None:
        """Server's first Initial to the client's first Handshake packet, at the server."""
        if self.first_server_initial_t is None or self.first_client_handshake_t is None:
            return None
        return self.first_client_handshake_t - self.first_server_initial_t

    def validated_paths(self) -> set[int]:
        """Sessions on which the server sent a PATH_CHALLENGE the client answered there."""
        sent = {
            (e.session, e.data)
            for e in self.path_events
            if e.kind == "challenge" and not e.to_server
        }
        return {
            e.session
            for e in self.path_events
            if e.kind == "response" and e.to_server and (e.session, e.data) in sent
        }

    def client_probed_paths(self) -> set[int]:
        """Sessions on which the client sent a PATH_CHALLENGE the server answered."""
        sent = {
            (e.session, e.data) for e in self.path_events if e.kind == "challenge" and e.to_server
        }
        return {
            e.session
            for e in self.path_events
            if e.kind == "response" and not e.to_server and (e.session, e.data) in sent
        }


@dataclass
class Amplification:
    """Bytes the server sent and received on one address before validating it."""

    session: int
    sent: int = 0
    received: int = 0
    worst_ratio: float = 0.0
    violation: str | None = None
    validated: bool = False


@dataclass
class Analysis:
    conns: list[Conn]
    amplification: list[Amplification]
    ecn_marked: dict[bool, int]  # datagrams with ECT(0) seen, by direction (True: to server)
    datagrams: dict[bool, int]
    unparsed: int
    orphans: int  # packets we could not tie to a connection

    def summary(self) -> str:
        parts = [f"{len(self.conns)} connection(s)"]
        if self.orphans or self.unparsed:
            parts.append(
                f"{self.orphans} packets of no known connection, "
                f"{self.unparsed} unparsable datagrams"
            )
        for c in self.conns[:3]:
            dec = ", ".join(f"{k} {v}" for k, v in sorted(c.decrypted.items()))
            parts.append(f"conn {c.index}: decrypted {dec or 'nothing'}")
            if c.failures:
                fails = ", ".join(f"{k} {v}" for k, v in sorted(c.failures.items()))
                parts.append(f"conn {c.index}: undecrypted {fails}")
        return "; ".join(parts)


class Analyzer:
    """Feed it a tap recording in order; see `analyze`."""

    def __init__(self, keylog: KeyLog) -> None:
        self.keylog = keylog
        self.conns: list[Conn] = []
        self._client_cid: dict[bytes, Conn] = {}
        self._server_cid: dict[bytes, Conn] = {}
        self._retry_scid: dict[bytes, Conn] = {}
        self.unparsed = 0
        self.orphans = 0

    # -- connection lookup --------------------------------------------------------

    def _short_conn(self, rec: Record, start: int) -> tuple[Conn | None, int]:
        table = self._server_cid if rec.to_server else self._client_cid
        for length in sorted({len(c) for c in table}, reverse=True):
            conn = table.get(rec.data[start + 1 : start + 1 + length])
            if conn is not None:
                return conn, length
        if len(self.conns) == 1 and not table:
            return self.conns[0], 0
        return None, 0

    def _long_conn(self, rec: Record, pkt: Packet) -> Conn | None:
        if rec.to_server:
            conn = self._client_cid.get(pkt.scid)
            if conn is None:
                conn = self._retry_scid.get(pkt.dcid) or self._server_cid.get(pkt.dcid)
                if conn is None and pkt.kind == "initial":
                    conn = Conn(len(self.conns), pkt.dcid, rec.t)
                    self.conns.append(conn)
                if conn is not None:
                    conn.client_cids.add(pkt.scid)
                    self._client_cid[pkt.scid] = conn
            return conn
        return self._client_cid.get(pkt.dcid)

    # -- per packet ---------------------------------------------------------------

    def feed(self, rec: Record) -> None:
        try:
            packets = parse_datagram(rec.data, 0)
        except WireError:
            self.unparsed += 1
            return
        for pkt in packets:
            if pkt.kind == "1rtt":
                conn, length = self._short_conn(rec, pkt.start)
                if conn is None:
                    self.orphans += 1
                    continue
                pkt.dcid = rec.data[pkt.start + 1 : pkt.start + 1 + length]
                pkt.pn_offset = pkt.start + 1 + length
            elif pkt.kind in ("vn", "unknown"):
                continue
            else:
                conn = self._long_conn(rec, pkt)
                if conn is None:
                    self.orphans += 1
                    continue
                self._long_header_facts(conn, rec, pkt)
                if pkt.kind == "retry":
                    continue
            conn.sessions.add(rec.session)
            self._decrypt(conn, rec, pkt)

    def _long_header_facts(self, conn: Conn, rec: Record, pkt: Packet) -> None:
        versions = conn.client_versions if rec.to_server else conn.server_versions
        if not versions or versions[-1] != pkt.version:
            versions.append(pkt.version)
        if rec.to_server:
            if (
                pkt.kind == "initial"
                and conn.retry_scid is not None
                and pkt.dcid == conn.retry_scid
            ):
                conn.key_dcid = pkt.dcid
                conn._initial.clear()
                if pkt.token and pkt.token == conn.retry_token:
                    conn.retry_token_echoed = True
            if pkt.kind == "handshake" and conn.first_client_handshake_t is None:
                conn.first_client_handshake_t = rec.t
            if pkt.kind == "0rtt":
                conn.zero_rtt_packets += 1
            return
        if pkt.kind == "retry":
            conn.retry_scid, conn.retry_token = pkt.scid, pkt.token
            self._retry_scid[pkt.scid] = conn
            return
        if pkt.scid not in self._server_cid:
            self._server_cid[pkt.scid] = conn
            conn.server_cids.add(pkt.scid)
        if pkt.kind == "initial" and conn.first_server_initial_t is None:
            conn.first_server_initial_t = rec.t

    def _level_keys(self, conn: Conn, level: str, to_server: bool, version: int) -> Keys | None:
        if level == "initial":
            pair = conn._initial.get(version)
            if pair is None:
                pair = conn._initial[version] = initial_keys(conn.key_dcid, version)
            return pair[0] if to_server else pair[1]
        cached = conn._keys.get((level, to_server, version))
        if cached is not None:
            return cached
        if conn.client_random is None or conn.server_hello is None:
            return None
        secrets = self.keylog.get(conn.client_random, {})
        label = {
            ("0rtt", True): "CLIENT_EARLY_TRAFFIC_SECRET",
            ("handshake", True): "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            ("handshake", False): "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            ("1rtt", True): "CLIENT_TRAFFIC_SECRET_0",
            ("1rtt", False): "SERVER_TRAFFIC_SECRET_0",
        }.get((level, to_server))
        secret = secrets.get(label) if label else None
        if secret is None:
            return None
        keys = Keys(conn.server_hello.cipher_suites[0], secret, version)
        conn._keys[(level, to_server, version)] = keys
        return keys

    def _decrypt(self, conn: Conn, rec: Record, pkt: Packet) -> None:
        level = pkt.kind
        d = rec.to_server
        version = pkt.version if level != "1rtt" else conn.negotiated_version
        keys = self._level_keys(conn, level, d, version)
        if keys is None:
            if level == "0rtt" and conn.server_hello is None:
                conn._pending.append((rec, pkt))
            else:
                conn.failures[f"{level} (no keys)"] += 1
            return
        largest = conn._largest.get((d, level), -1)
        try:
            if level == "1rtt":
                pn, payload = self._open_1rtt(conn, keys, pkt, largest, rec)
            else:
                _, pn, payload = keys.unprotect(pkt, largest)
        except WireError:
            if not self._rekey_initial(conn, rec, pkt):
                conn.failures[level] += 1
                return
            return self._decrypt(conn, rec, pkt)
        conn._largest[(d, level)] = max(largest, pn)
        conn.decrypted[level] += 1
        try:
            frames = walk_frames(payload)
        except WireError:
            conn.failures[f"{level} frames"] += 1
            return
        for frame in frames:
            self._frame(conn, rec, level, frame.type, frame.fields)

    def _rekey_initial(self, conn: Conn, rec: Record, pkt: Packet) -> bool:
        """A client Initial that the connection's Initial keys cannot open, but keys from its
        own DCID can: the first Initial we saw had a corrupted DCID. Adopt the new keys."""
        if pkt.kind != "initial" or not rec.to_server or pkt.dcid == conn.key_dcid:
            return False
        client, _ = initial_keys(pkt.dcid, pkt.version)
        try:
            client.unprotect(pkt, conn._largest.get((True, "initial"), -1))
        except WireError:
            return False
        conn.key_dcid = pkt.dcid
        conn._initial.clear()
        return True

    def _open_1rtt(
        self, conn: Conn, base: Keys, pkt: Packet, largest: int, rec: Record
    ) -> tuple[int, bytes]:
        d = rec.to_server
        gens = conn._gens[d]
        if not gens:
            gens.append(base)
        first, pn, header, pn_len = gens[0].remove_hp(pkt, largest)
        phase = (first >> 2) & 1
        cur = conn._gen[d]
        tries = [cur] if phase == cur & 1 else [cur + 1, cur - 1]
        for g in tries:
            if g < 0:
                continue
            while len(gens) <= g:
                gens.append(gens[-1].next_generation())
            try:
                payload = gens[g].open(pkt, pn, header, pn_len)
            except WireError:
                continue
            if g > cur:
                conn._gen[d] = g
                conn.key_updates[d].append(rec.t)
            return pn, payload
        raise WireError("1-RTT open failed")

    def _frame(self, conn: Conn, rec: Record, level: str, ftype: int, f: dict[str, object]) -> None:
        d = rec.to_server
        if ftype == 0x06:
            stream = conn._crypto.setdefault((d, level), CryptoStream())
            offset, data = f["offset"], f["data"]
            assert isinstance(offset, int) and isinstance(data, bytes)
            for msg_type, body in stream.add(offset, data):
                self._tls(conn, msg_type, body)
        elif ftype == 0x08:
            sid, offset, length = f["stream_id"], f["offset"], f["length"]
            assert isinstance(sid, int) and isinstance(offset, int) and isinstance(length, int)
            if d:
                if offset == 0 and sid & 3 == 0:
                    (conn.requests_0rtt if level == "0rtt" else conn.requests_1rtt).add(sid)
            else:
                conn.stream_bytes_to_client[rec.session] += length
                conn.last_stream_to_client = (rec.t, rec.session)
        elif ftype in (0x1A, 0x1B):
            data = f["data"]
            assert isinstance(data, bytes)
            kind = "challenge" if ftype == 0x1A else "response"
            conn.path_events.append(PathEvent(rec.t, d, rec.session, kind, data))
        elif ftype == 0x03:
            ect0 = f["ect0"]
            assert isinstance(ect0, int)
            conn.ack_ecn_ect0[d] = max(conn.ack_ecn_ect0[d], ect0)
        elif ftype in (0x1C, 0x1D):
            code = f["code"]
            assert isinstance(code, int)
            conn.closes.append((rec.t, d, ftype, code))
        elif ftype == 0x12 and not d:
            value = f["value"]
            assert isinstance(value, int)
            conn.max_streams_bidi = max(conn.max_streams_bidi, value)
        elif ftype == 0x1E and not d and conn.handshake_done_t is None:
            conn.handshake_done_t = rec.t
        elif ftype == 0x18:
            cid = f["cid"]
            assert isinstance(cid, bytes)
            if d:
                conn.client_cids.add(cid)
                self._client_cid[cid] = conn
            else:
                conn.server_cids.add(cid)
                self._server_cid[cid] = conn

    def _tls(self, conn: Conn, msg_type: int, body: bytes) -> None:
        try:
            hello = parse_message(msg_type, body)
        except WireError:
            conn.failures["tls parse"] += 1
            return
        if hello is None:
            return
        if msg_type == CLIENT_HELLO and conn.client_hello is None:
            conn.client_hello = hello
        elif msg_type == SERVER_HELLO and conn.server_hello is None:
            conn.server_hello = hello
            pending, conn._pending = conn._pending, []
            for rec, pkt in pending:
                self._decrypt(conn, rec, pkt)
        elif msg_type == ENCRYPTED_EXTENSIONS and conn.encrypted_extensions is None:
            conn.encrypted_extensions = hello


def _amplification(records: list[Record]) -> list[Amplification]:
    """Per server-side address: did the server send > 3x what it received before validation?

    The address counts as validated once the server has received a Handshake packet from it
    (RFC 9000 section 8.1) or an Initial with a token after the server sent a Retry there.
    """
    stats: dict[int, Amplification] = {}
    retried: set[int] = set()
    for rec in records:
        amp = stats.setdefault(rec.session, Amplification(rec.session))
        if amp.validated:
            continue
        try:
            packets = parse_datagram(rec.data, 0)
        except WireError:
            packets = []
        if rec.to_server:
            amp.received += len(rec.data)
            for p in packets:
                if p.kind == "handshake" or (
                    p.kind == "initial" and p.token and rec.session in retried
                ):
                    amp.validated = True
        else:
            if any(p.kind == "retry" for p in packets):
                retried.add(rec.session)
            amp.sent += len(rec.data)
            ratio = amp.sent / amp.received if amp.received else float("inf")
            amp.worst_ratio = max(amp.worst_ratio, ratio)
            if ratio > 3.0 and amp.violation is None:
                amp.violation = (
                    f"server sent {amp.sent} bytes having received {amp.received} "
                    f"before validating address #{rec.session}"
                )
    return list(stats.values())


def analyze(records: list[Record], keylog: KeyLog) -> Analysis:
    analyzer = Analyzer(keylog)
    ecn = {True: 0, False: 0}
    counts = {True: 0, False: 0}
    for rec in records:
        analyzer.feed(rec)
        counts[rec.to_server] += 1
        if rec.ecn == 2:
            ecn[rec.to_server] += 1
    for conn in analyzer.conns:  # 0-RTT packets of a connection whose ServerHello never came
        for _ in conn._pending:
            conn.failures["0rtt (no ServerHello)"] += 1
        conn._pending.clear()
    return Analysis(
        analyzer.conns, _amplification(records), ecn, counts, analyzer.unparsed, analyzer.orphans
    )


def session_rates(records: list[Record], start: float, end: float) -> dict[int, float]:
    """Server-to-client bytes per session between ``start`` and ``end``, as kbit/s."""
    span = max(end - start, 1e-6)
    totals: Counter[int] = Counter()
    for rec in records:
        if not rec.to_server and start <= rec.t <= end:
            totals[rec.session] += len(rec.data)
    return {s: b * 8 / span / 1000 for s, b in totals.items()}
