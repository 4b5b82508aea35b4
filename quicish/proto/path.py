"""Network paths of one connection and their validation (RFC 9000 sections 8.2 and 9).

A path is the peer's address plus our local path id (the driver's socket; always 0 on a
server). The connection sends on its *current* path; other paths exist while they are
probed (PATH_CHALLENGE / PATH_RESPONSE). Until a path is validated, at most three times
the bytes received on it may be sent on it (anti-amplification, RFC 9000 section 8).
"""

from __future__ import annotations

from collections.abc import Callable

Address = tuple[str, int]
MAX_OTHER_PATHS = 4  # paths probed at once; more new addresses evict the oldest
MAX_CHALLENGES = 8  # outstanding challenge payloads remembered per path


class Path:
    """One (peer address, local path id) pair."""

    __slots__ = (
        "addr",
        "bytes_received",
        "bytes_sent",
        "challenge_due",
        "challenges",
        "cid_seq",
        "deadline",
        "local",
        "next_challenge_at",
        "pad_response",
        "responses",
        "validated",
    )

    def __init__(self, addr: Address | None, local: int = 0, validated: bool = False) -> None:
        self.addr = addr
        self.local = local
        self.validated = validated
        self.bytes_received = 0
        self.bytes_sent = 0
        # PATH_CHALLENGE data sent and not yet answered (tuples: the empty one is shared).
        self.challenges: tuple[bytes, ...] = ()
        self.challenge_due = False  # a (new) PATH_CHALLENGE should go out on this path
        self.next_challenge_at: float | None = None
        self.deadline: float | None = None  # validation abandoned after this
        # PATH_RESPONSE data to send on this path: the latest challenge only (RFC 9000
        # 8.2.2 lets one answer stand for all), and whether to pad its datagram.
        self.responses: tuple[bytes, ...] = ()
        self.pad_response = False
        self.cid_seq: int | None = None  # the peer CID reserved for this path, if any

    def amplification_budget(self) -> int:
        if self.validated:
            return 1 << 62
        return max(0, 3 * self.bytes_received - self.bytes_sent)

    @property
    def validating(self) -> bool:
        return self.deadline is not None

    def has_output(self) -> bool:
        return bool(self.responses) or self.challenge_due

    def __repr__(self) -> str:
        state = "validated" if self.validated else "unvalidated"
        return f"Path({self.addr!r}, local={self.local}, {state})"


class PathManager:
    """The current path and the ones being probed; challenge timers."""

    __slots__ = ("_random", "current", "others")

    def __init__(self, current: Path, random_bytes: Callable[[int], bytes]) -> None:
        self.current = current
        self.others: dict[tuple[Address | None, int], Path] = {}
        self._random = random_bytes

    def get(self, addr: Address, local: int) -> Path | None:
        if self.current.addr == addr and self.current.local == local:
            return self.current
        return self.others.get((addr, local))

    def lookup(self, addr: Address, local: int) -> Path:
        """The path a datagram arrived on, created when new."""
        path = self.get(addr, local)
        if path is None:
            if len(self.others) >= MAX_OTHER_PATHS:
                oldest = next(iter(self.others))
                del self.others[oldest]
            path = self.others[(addr, local)] = Path(addr, local)
        return path

    def add(self, path: Path) -> None:
        self.others[(path.addr, path.local)] = path

    def remove(self, path: Path) -> None:
        self.others.pop((path.addr, path.local), None)

    def make_current(self, path: Path) -> Path:
        """Switch to ``path``; returns the previous current path (kept among the others
        while it is being validated, otherwise forgotten)."""
        old = self.current
        self.remove(path)
        self.current = path
        if old.validating or old.has_output():
            self.add(old)
        return old

    # ---- validation --------------------------------------------------------------------------
    def start_validation(self, path: Path, now: float, timeout: float) -> None:
        """Begin (or restart) validating ``path``: a challenge goes out at once."""
        path.challenge_due = True
        path.next_challenge_at = None
        path.deadline = now + timeout

    def next_challenge(self, path: Path, now: float, interval: float) -> bytes:
        """Fresh challenge data for a PATH_CHALLENGE being sent on ``path`` now."""
        data = self._random(8)
        path.challenges = (*path.challenges, data)[-MAX_CHALLENGES:]
        path.challenge_due = False
        path.next_challenge_at = now + interval
        return data

    def on_response(self, data: bytes) -> Path | None:
        """A PATH_RESPONSE: the path whose challenge it answers (now validated), or None."""
        for path in (self.current, *self.others.values()):
            if data in path.challenges:
                path.validated = True
                path.challenges = ()
                path.challenge_due = False
                path.next_challenge_at = None
                path.deadline = None
                return path
        return None

    def deadline(self) -> float | None:
        best: float | None = None
        for path in (self.current, *self.others.values()):
            for t in (path.next_challenge_at, path.deadline):
                if t is not None and (best is None or t < best):
                    best = t
        return best

    def on_timer(self, now: float) -> list[Path]:
        """Re-arm challenges that are due; returns the paths whose validation failed."""
        failed: list[Path] = []
        for path in (self.current, *self.others.values()):
            if path.deadline is not None and now >= path.deadline:
                path.deadline = None
                path.next_challenge_at = None
                path.challenge_due = False
                path.challenges = ()
                failed.append(path)
            elif path.next_challenge_at is not None and now >= path.next_challenge_at:
                path.next_challenge_at = None
                path.challenge_due = True
        return failed
