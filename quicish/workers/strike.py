"""A 0-RTT strike register shared by the processes of one machine (``--workers``).

Session tickets open on every worker (they share the ticket keys), so each worker's own
replay filter would let a replayed 0-RTT flight through once per worker: the kernel's
reuseport hash sends a flight replayed from another source port to another worker. This
register is one table in shared memory that every worker checks and fills.

The table is an anonymous shared mapping made before the workers are forked (they inherit
it): ``capacity`` slots of (16-byte identity hash, expiry), open addressing with a bounded
probe of ``PROBES`` slots, and expired slots reused. A check takes a POSIX record lock
(``fcntl.lockf``) on a private file: the kernel releases it when its holder dies, so a
worker killed mid-check cannot wedge the others (it may leave at worst one torn slot: one
identity wrongly remembered or forgotten). Times are ``time.monotonic()`` seconds, one
clock for every process of the machine. When the probed slots are all live, the identity
is refused (0-RTT rejected, resumption unaffected), as :class:`ReplayFilter` does when
full.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import tempfile
import threading

from ..errors import ConfigError

PROBES = 32  # slots looked at per identity
_SLOT = struct.Struct("=16sd")  # identity hash, expiry (monotonic seconds)


class SharedStrikeRegister:
    """Ticket identities used for 0-RTT in the last ``window`` seconds, shared by every
    process forked after it was made (a :class:`~quicish.tls.tickets.StrikeRegister`)."""

    __slots__ = ("_local", "_lock_fd", "_map", "_mask", "capacity", "window")

    def __init__(self, window: float = 10.0, capacity: int = 1 << 16) -> None:
        if window <= 0:
            raise ConfigError("window must be positive")
        if capacity < PROBES or capacity & (capacity - 1):
            raise ConfigError(f"capacity must be a power of two, at least {PROBES}")
        self.window = window
        self.capacity = capacity
        self._mask = capacity - 1
        self._map = mmap.mmap(-1, capacity * _SLOT.size)  # MAP_SHARED | MAP_ANONYMOUS
        fd, path = tempfile.mkstemp(prefix="quicish-strike-")
        os.unlink(path)  # the descriptor is the lock; no name left behind
        self._lock_fd = fd
        self._local = threading.Lock()  # record locks do not exclude threads of a process

    def __len__(self) -> int:
        """Slots holding an identity (expired ones included until reused)."""
        empty = bytes(_SLOT.size)
        data = self._map
        size = _SLOT.size
        return sum(data[i : i + size] != empty for i in range(0, len(data), size))

    def check_and_add(self, identity: bytes, now: float) -> bool:
        """True when ``identity`` is new (and now remembered); False for a replay."""
        key = hashlib.sha256(identity).digest()[:16]
        start = int.from_bytes(key[:8], "little") & self._mask
        with self._local:
            fcntl.lockf(self._lock_fd, fcntl.LOCK_EX)
            try:
                return self._check_and_add(key, start, now)
            finally:
                fcntl.lockf(self._lock_fd, fcntl.LOCK_UN)

    def _check_and_add(self, key: bytes, start: int, now: float) -> bool:
        data, size, mask = self._map, _SLOT.size, self._mask
        free = -1
        for i in range(PROBES):
            slot = (start + i) & mask
            held, expiry = _SLOT.unpack_from(data, slot * size)
            if expiry <= now:  # empty or expired: usable
                if free < 0:
                    free = slot
            elif held == key:
                return False
        if free < 0:
            return False  # full around this identity: refuse, as a full filter does
        _SLOT.pack_into(data, free * size, key, now + self.window)
        return True

    def close(self) -> None:
        """Release the mapping and the lock file (in the process that is done with it)."""
        self._map.close()
        os.close(self._lock_fd)
