"""Connection ID management (RFC 9000 section 5.1): the CIDs we issue to the peer and the
CIDs the peer issued to us, with their stateless reset tokens.

Each endpoint keeps up to the peer's ``active_connection_id_limit`` of its own CIDs active
(NEW_CONNECTION_ID), retires what the peer asks (RETIRE_CONNECTION_ID, ``retire_prior_to``)
and switches to an unused peer CID whenever it starts using a new path, so the paths
cannot be linked by an observer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from hmac import compare_digest

from .. import kdf
from ..errors import ErrorCode, ProtocolError
from ..wire import frames as F
from .records import NewConnectionIdRecord, OwnerHandlers, RecordTable, RetireConnectionIdRecord

RESET_TOKEN_SIZE = 16
MAX_ISSUED = 8  # our CIDs active at once, at most (the peer's limit may be lower)
# The empty sets of PeerCids with nothing retired or reserved: shared, never added to.
NO_SEQUENCES: set[int] = set()
#: No CID stocked, no retirement to send: shared empty lists, never written (a table makes
#: its own list before adding).
NO_STOCK: list[tuple[bytes, bytes]] = []
NO_RETIREMENTS: list[int] = []
_NEW_CID = F.FrameType.NEW_CONNECTION_ID
_RETIRE_CID = F.FrameType.RETIRE_CONNECTION_ID


def reset_token(key: bytes, cid: bytes) -> bytes:
    """The stateless reset token of ``cid``: HMAC-SHA256(key, cid), first 16 bytes."""
    return kdf.hmac_digest("sha256", key, cid)[:RESET_TOKEN_SIZE]


@dataclass(slots=True)
class IssuedCid:
    seq: int
    cid: bytes
    token: bytes


class LocalCids:
    """The connection IDs we issued; the peer addresses its packets to any of them."""

    __slots__ = (
        "_by_cid", "_length", "_mac", "_make", "_next_seq", "_random", "_stock", "active",
        "peer_limit", "pending", "retire_prior_to",
    )  # fmt: skip

    def __init__(
        self,
        initial: bytes,
        key: bytes | Callable[[bytes], bytes],
        random_bytes: Callable[[int], bytes],
        new_cid: Callable[[], bytes | None] | None = None,
    ) -> None:
        """``key``: the stateless reset key, or HMAC-SHA256 under it (a function of the
        message: a server's, made once for all its connections). ``new_cid``: where our
        CIDs come from (a server's QUIC-LB format; all of ``initial``'s length; None from
        it: no more CIDs, nonces spent); None: random bytes."""
        # HMAC-SHA256 under the reset key, its pads hashed once for all our CIDs' tokens
        self._mac = kdf.hmac_keyed("sha256", key) if isinstance(key, bytes) else key
        self._random = random_bytes
        self._make = new_cid
        self._length = len(initial)
        self.active: dict[int, IssuedCid] = {0: IssuedCid(0, initial, self._token(initial))}
        self._by_cid: dict[bytes, int] = {initial: 0}
        self._next_seq = 1
        self.peer_limit = 2  # the peer's active_connection_id_limit
        self.pending: list[int] = []  # sequence numbers to announce (NEW_CONNECTION_ID)
        self.retire_prior_to = 0
        self._stock: list[tuple[bytes, bytes]] = NO_STOCK  # (cid, token) made ahead of need

    def stock(self, count: int = MAX_ISSUED - 1) -> None:
        """Make ``count`` CIDs and their reset tokens now, for later :meth:`top_up` calls:
        work an idle moment can take off the handshake's critical path."""
        if self._stock is NO_STOCK:
            self._stock = []
        if self._make is not None:  # (a format's CID costs more: only what top_up takes)
            count = min(count, min(self.peer_limit, MAX_ISSUED) - len(self.active))
            self._stock.extend((cid, self._token(cid)) for cid in self._made(count))
            return
        length = self._length
        fresh = self._random(length * count)
        for start in range(0, length * count, length):
            cid = fresh[start : start + length]
            self._stock.append((cid, self._token(cid)))

    def _new_cid(self) -> tuple[bytes, bytes] | None:
        """A CID not yet issued, with its reset token (from the stock when there is one);
        None when the format can make no more."""
        while self._stock:
            cid, token = self._stock.pop()
            if cid not in self._by_cid:
                return cid, token
        if self._make is not None:
            made = self._made(1)
            if not made:
                return None
            cid = made[0]
        else:
            while (cid := self._random(self._length)) in self._by_cid:
                pass
        return cid, self._token(cid)

    def _made(self, count: int) -> list[bytes]:
        """Up to ``count`` CIDs of the format (fewer once it is spent)."""
        assert self._make is not None
        made = []
        for _ in range(count):
            cid = self._make()  # (a format never repeats a CID)
            if cid is None:
                break
            made.append(cid)
        return made

    def _token(self, cid: bytes) -> bytes:
        """The stateless reset token of ``cid`` (as :func:`reset_token` under our key)."""
        return self._mac(cid)[:RESET_TOKEN_SIZE]

    def owns(self, cid: bytes) -> bool:
        return cid in self._by_cid

    def token_of(self, cid: bytes) -> bytes:
        entry = self.active.get(self._by_cid.get(cid, -1))
        return entry.token if entry is not None and entry.cid == cid else self._token(cid)

    def top_up(self) -> list[bytes]:
        """Issue CIDs up to the peer's limit; returns the new CIDs (for routing)."""
        new: list[bytes] = []
        while len(self.active) < min(self.peer_limit, MAX_ISSUED):
            fresh = self._new_cid()
            if fresh is None:
                break  # a QUIC-LB format out of nonces: no unroutable CID goes out
            cid, token = fresh
            seq = self._next_seq
            self._next_seq += 1
            self.active[seq] = IssuedCid(seq, cid, token)
            self._by_cid[cid] = seq
            self.pending.append(seq)
            new.append(cid)
        else:  # the peer's limit reached: what is left of the stock waits no more
            self._stock = NO_STOCK  # (a later retirement's replacement is made then)
        return new

    def frame_for(self, seq: int) -> F.NewConnectionIdFrame | None:
        entry = self.active.get(seq)
        if entry is None:
            return None
        return F.NewConnectionIdFrame(seq, self.retire_prior_to, entry.cid, entry.token)

    def on_lost(self, seq: int) -> None:
        if seq in self.active and seq not in self.pending:
            self.pending.append(seq)

    def register_records(self, table: RecordTable) -> None:
        """A lost NEW_CONNECTION_ID is sent again while its CID is still active."""
        table.register_owner(self, _LOCAL_RECORDS)

    def on_retire(self, seq: int, packet_dcid: bytes) -> bytes | None:
        """RETIRE_CONNECTION_ID from the peer; returns the retired CID (None if unknown)."""
        if seq >= self._next_seq:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                f"retiring CID {seq} that was never issued",
                _RETIRE_CID,
            )
        entry = self.active.get(seq)
        if entry is None:
            return None  # already retired
        if entry.cid == packet_dcid:
            raise ProtocolError(
                ErrorCode.PROTOCOL_VIOLATION,
                "retiring the CID the packet was sent to",
                _RETIRE_CID,
            )
        del self.active[seq]
        del self._by_cid[entry.cid]
        return entry.cid


class PeerCids:
    """The connection IDs the peer issued to us; one of them is in use on the current path.

    Every sequence number below ``retire_prior_to`` counts as retired the moment it rises
    (RETIRE_CONNECTION_ID queued for each one not retired before), so a late or repeated
    NEW_CONNECTION_ID below it needs no memory to be ignored. Retirements whose
    RETIRE_CONNECTION_ID is not yet acknowledged are bounded by ``retire_limit``: a peer
    forcing more is a CONNECTION_ID_LIMIT_ERROR (RFC 9000 5.1.2).
    """

    __slots__ = (
        "_queued", "_retired", "_unacked", "current", "entries", "limit",
        "pending_retire", "reserved", "retire_limit", "retire_prior_to",
    )  # fmt: skip

    def __init__(self, limit: int, retire_limit: int = 32) -> None:
        self.limit = limit  # our active_connection_id_limit
        # RFC 9000 5.1.2: allow at least twice our limit of unacknowledged retirements.
        self.retire_limit = max(retire_limit, 2 * limit)
        self.entries: dict[int, tuple[bytes, bytes | None]] = {}  # seq -> (cid, token)
        self.current = 0
        self.retire_prior_to = 0
        # RETIRE_CONNECTION_ID to send (a few: a list; shared and empty until the first)
        self.pending_retire: list[int] = NO_RETIREMENTS
        # Until the first retirement (most connections have none), the sets below are the
        # shared NO_SEQUENCES, which is only read or discarded from (an empty set is 216
        # bytes): _retire() and reserve() make their own before adding.
        self._queued: set[int] = NO_SEQUENCES  # what pending_retire holds (O(1) re-queue)
        self._unacked: set[int] = NO_SEQUENCES  # retired, RETIRE_CONNECTION_ID not acked
        self._retired: set[int] = NO_SEQUENCES  # retired one by one at or above retire_prior_to
        self.reserved: set[int] = NO_SEQUENCES  # held for a path being probed

    def set_initial(self, cid: bytes, token: bytes | None = None) -> None:
        """The peer's handshake CID (sequence 0) and, from a server, its reset token."""
        self.entries[0] = (cid, token)

    @property
    def current_cid(self) -> bytes:
        return self.entries[self.current][0]

    def is_reset_token(self, token: bytes) -> bool:
        """``token`` is the reset token of one of the peer's active CIDs (a look at each, a
        handful, for a datagram that no key opens: no table of their own)."""
        found = False
        for _, known in self.entries.values():
            if known is not None and compare_digest(known, token):
                found = True
        return found

    def on_new(self, frame: F.NewConnectionIdFrame) -> bool:
        """NEW_CONNECTION_ID; True when the CID in use was retired and we switched."""
        seq, cid, token = frame.seq, bytes(frame.cid), bytes(frame.reset_token)
        known = self.entries.get(seq)
        if known is not None:
            if known[0] != cid or known[1] != token:
                raise ProtocolError(
                    ErrorCode.PROTOCOL_VIOLATION, f"CID sequence {seq} reused", _NEW_CID
                )
        elif seq >= self.retire_prior_to and seq not in self._retired:
            # (Below retire_prior_to, or retired already: RFC 9000 19.15 asks for one
            # RETIRE_CONNECTION_ID per sequence number, and it is queued or sent.)
            if any(c == cid for c, _ in self.entries.values()):
                raise ProtocolError(
                    ErrorCode.PROTOCOL_VIOLATION, "one CID under two sequence numbers", _NEW_CID
                )
            self.entries[seq] = (cid, token)
        switched = False
        prior = frame.retire_prior_to
        if prior > self.retire_prior_to:
            if len(self._unacked) + prior - self.retire_prior_to > self.retire_limit:
                raise ProtocolError(
                    ErrorCode.CONNECTION_ID_LIMIT_ERROR, "too many CIDs to retire", _NEW_CID
                )
            first, self.retire_prior_to = self.retire_prior_to, prior
            for old in range(first, prior):
                if old not in self._retired:
                    self._retire(old)
            self._retired = {s for s in self._retired if s >= prior}
            if self.current not in self.entries:
                fresh = self._unused()
                if fresh is None:
                    raise ProtocolError(ErrorCode.PROTOCOL_VIOLATION, "all CIDs retired", _NEW_CID)
                self.current = fresh
                switched = True
        if len(self.entries) > self.limit:
            raise ProtocolError(
                ErrorCode.CONNECTION_ID_LIMIT_ERROR,
                f"{len(self.entries)} active CIDs exceed our limit of {self.limit}",
                _NEW_CID,
            )
        if len(self._unacked) > self.retire_limit:
            raise ProtocolError(
                ErrorCode.CONNECTION_ID_LIMIT_ERROR, "too many CIDs to retire", _NEW_CID
            )
        return switched

    def _retire(self, seq: int) -> None:
        """Retire ``seq`` (known or not: the peer issued every number below its newest)."""
        if self._unacked is NO_SEQUENCES:  # the first retirement
            self._queued, self._unacked = set(), set()
            self.pending_retire = []
        if self._retired is NO_SEQUENCES:
            self._retired = set()
        self.reserved.discard(seq)
        self.entries.pop(seq, None)
        if seq >= self.retire_prior_to:
            self._retired.add(seq)
            if len(self._retired) > self.retire_limit:
                # Only a peer leaving gaps in its sequence numbers gets here: forget the
                # oldest (a repeat of its NEW_CONNECTION_ID would then be taken as new).
                self._retired.discard(min(self._retired))
        self._unacked.add(seq)
        self._queued.add(seq)
        self.pending_retire.append(seq)

    def _unused(self) -> int | None:
        others = [s for s in self.entries if s != self.current and s not in self.reserved]
        return min(others) if others else None

    def reserve(self) -> int | None:
        """Set an unused CID aside for probing a new path; its sequence number or None."""
        seq = self._unused()
        if seq is not None:
            if self.reserved is NO_SEQUENCES:
                self.reserved = set()
            self.reserved.add(seq)
        return seq

    def cid_of(self, seq: int) -> bytes | None:
        entry = self.entries.get(seq)
        return entry[0] if entry is not None else None

    def switch(self, seq: int | None = None) -> bool:
        """Move to CID ``seq`` (default: any unused one), retiring the one in use; False
        when there is none (the current CID is kept)."""
        fresh = self._unused() if seq is None else seq
        if fresh is None or fresh not in self.entries or fresh == self.current:
            return False
        self.reserved.discard(fresh)
        old, self.current = self.current, fresh
        self._retire(old)
        return True

    def next_retire(self) -> int:
        """The next sequence number to send RETIRE_CONNECTION_ID for (pending_retire
        must not be empty)."""
        seq = self.pending_retire.pop(0)
        self._queued.discard(seq)
        return seq

    def on_retire_acked(self, seq: int) -> None:
        self._unacked.discard(seq)

    def on_retire_lost(self, seq: int) -> None:
        if seq in self._unacked and seq not in self._queued:
            self._queued.add(seq)
            self.pending_retire.append(seq)

    def register_records(self, table: RecordTable) -> None:
        """RETIRE_CONNECTION_ID is re-sent when lost until acknowledged."""
        table.register_owner(self, _PEER_RECORDS)


#: The answers to the CID records (``RecordTable.register_owner``): a lost NEW_CONNECTION_ID
#: goes again while its CID is active, RETIRE_CONNECTION_ID until acknowledged.
_LOCAL_RECORDS: OwnerHandlers = {
    NewConnectionIdRecord: (None, lambda cids, rec: cids.on_lost(rec.sequence))
}
_PEER_RECORDS: OwnerHandlers = {
    RetireConnectionIdRecord: (
        lambda cids, rec: cids.on_retire_acked(rec.sequence),
        lambda cids, rec: cids.on_retire_lost(rec.sequence),
    )
}
