"""Paths of a connection (RFC 9000 section 9): which path a datagram belongs to, peer
migration, active migration probes, switching paths and falling back when one fails."""

from __future__ import annotations

import logging

from ..config import Config
from . import events as ev
from .cid import PeerCids
from .congestion import create as create_congestion_controller
from .event_queue import EventQueue
from .pacing import Pacer
from .packet_builder import PacketBuilder
from .path import Address, Path, PathManager
from .recovery import LossRecovery
from .rtt import RttEstimator
from .stats import ConnectionStats
from .trace import Trace

logger = logging.getLogger("quicish")


class Migration:
    """Path attribution and switching on top of the :class:`PathManager`."""

    __slots__ = (
        "_builder", "_config", "_events", "_is_client", "_pacer", "_peer_cids", "_recovery",
        "_stats", "fallback", "migrate_to", "paths", "trace",
    )  # fmt: skip

    def __init__(
        self,
        config: Config,
        paths: PathManager,
        peer_cids: PeerCids,
        recovery: LossRecovery,
        pacer: Pacer,
        builder: PacketBuilder,
        stats: ConnectionStats,
        events: EventQueue,
        *,
        is_client: bool,
    ) -> None:
        self._config = config
        self.paths = paths
        self._peer_cids = peer_cids
        self._recovery = recovery
        self._pacer = pacer
        self._builder = builder  # (sends with the new path's peer CID after a switch)
        self._stats = stats
        self._events = events  # the connection's event queue
        self._is_client = is_client
        # Server: the path of the client's newest non-probing packet, when it is new.
        self.migrate_to: Path | None = None
        self.fallback: Path | None = None  # last validated path, during a migration
        self.trace: Trace | None = None

    def path_of(self, addr: Address, local: int, confirmed: bool) -> Path:
        """The path a datagram from ``addr`` on local socket ``local`` arrived on (not
        the current one, which the caller checked)."""
        path = self.paths.current
        if self._is_client:
            # A client knows one server address; other local paths are its own probes.
            if local == path.local or path.addr is None:
                return path
            return self.paths.get(path.addr, local) or path
        if not confirmed:
            return path  # no migration before the handshake is confirmed (RFC 9000 9)
        fallback = self.fallback
        if fallback is not None and fallback.addr == addr:
            return fallback  # back from a (perhaps spoofed) new address: still validated
        return self.paths.lookup(addr, local)

    def validation_timeout(self) -> float:
        """RFC 9000 8.2.4: three times the larger of the current PTO and a new path's PTO."""
        recovery = self._recovery
        new_path_pto = 3 * recovery.rtt.initial_rtt + recovery.max_ack_delay
        return 3 * max(recovery.pto_interval(), new_path_pto)

    def start_validation(self, path: Path, now: float) -> None:
        self.paths.start_validation(path, now, self.validation_timeout())
        if self.trace is not None:
            self.trace.migration("probing_started", path, now)

    def probe(self, local: int, now: float) -> None:
        """Client, active migration: probe the server's address from local socket
        ``local`` with a CID of its own; raises ValueError when that cannot be."""
        current = self.paths.current
        addr = current.addr
        assert addr is not None
        if local == current.local or self.paths.get(addr, local) is not None:
            raise ValueError(f"local path {local} is already in use")
        seq = self._peer_cids.reserve()
        if seq is None:
            raise ValueError("no unused connection ID from the server for a new path")
        path = Path(addr, local)
        path.cid_seq = seq
        self.paths.add(path)
        self.start_validation(path, now)

    def on_challenge(
        self, path: Path, data: bytes, padded: bool, confirmed: bool, now: float
    ) -> None:
        """A PATH_CHALLENGE arrived on ``path`` (in a datagram of at least 1200 bytes when
        ``padded``; ``confirmed``: the handshake is)."""
        # Answered on the path the challenge arrived on (RFC 9000 8.2.2), one answer at most
        # per datagram received: the latest challenge replaces any still unanswered. Its
        # datagram is padded to 1200 bytes on a path being validated, or when the peer
        # padded its own (checking the path MTU): never to multiply a small challenge.
        path.responses = (data,)
        path.pad_response = not path.validated or padded
        if (
            not self._is_client
            and path is not self.paths.current
            and not path.validated
            and not path.validating
            and confirmed
        ):
            # A client probing a new address: validate it too, so it can migrate there.
            self.start_validation(path, now)

    def on_response(self, data: bytes, now: float) -> None:
        path = self.paths.on_response(data)
        if path is None:
            return  # an answer to nothing we asked (or to an abandoned challenge)
        if self.trace is not None:
            self.trace.migration("probing_successful", path, now)
        current = self.paths.current
        if path is current:
            self.fallback = None
            self._events.append(ev.PathValidated(path.addr or ("", 0), path.local))
        elif self._is_client and path.local != current.local:
            self.switch(path, now)  # active migration: the probed path works
            self._events.append(ev.PathValidated(path.addr or ("", 0), path.local))

    def on_peer_migrated(self, now: float) -> None:
        """Server: the client's newest non-probing packet arrived on ``migrate_to``
        (RFC 9000 9.3)."""
        path, self.migrate_to = self.migrate_to, None
        if path is None or path is self.paths.current:
            return
        old = self.paths.current
        self.switch(path, now)
        if path.validated:
            self._events.append(ev.PathValidated(path.addr or ("", 0), path.local))
            return
        if old.validated:
            self.fallback = old  # where to return if the new address does not answer
        if not path.validating:
            self.start_validation(path, now)

    def switch(self, path: Path, now: float) -> None:
        """Send on ``path`` from now on."""
        old = self.paths.make_current(path)
        if self.trace is not None:
            self.trace.migration("migration_complete", path, now)
        # RFC 9000 9.5: a fresh peer CID on a new path, when the peer gave us one.
        peers = self._peer_cids
        if peers.switch(path.cid_seq):
            self._builder.peer_cid = peers.current_cid
        path.cid_seq = None
        # RFC 9000 9.4: the new path starts with fresh congestion and RTT state unless only
        # the peer's port changed (NAT rebinding).
        if (
            path.local != old.local
            or old.addr is None
            or path.addr is None
            or (old.addr[0] != path.addr[0])
        ):
            self.reset_congestion()
        self._stats.path_migrations += 1
        logger.debug("path: now %r (was %r)", path, old)

    def on_timer(self, now: float) -> None:
        """Path validation timers: failed validations fall back or give up."""
        for path in self.paths.on_timer(now):
            self._on_path_failed(path, now)

    def _on_path_failed(self, path: Path, now: float) -> None:
        logger.debug("path validation failed: %r", path)
        if self.trace is not None:
            self.trace.migration("probing_abandoned", path, now)
        if path is self.paths.current:
            fallback, self.fallback = self.fallback, None
            if fallback is not None:
                self.switch(fallback, now)
            else:  # nowhere else to go: keep trying (the idle timeout ends it otherwise)
                self.start_validation(path, now)
        else:
            self.paths.remove(path)
            if path.cid_seq is not None:
                self._peer_cids.reserved.discard(path.cid_seq)
        self._events.append(ev.PathValidationFailed(path.addr or ("", 0), path.local))

    def reset_congestion(self) -> None:
        """A new congestion controller and RTT estimator (for a new path)."""
        cfg = self._config
        cc = create_congestion_controller(cfg.congestion_control, cfg.initial_datagram_size)
        recovery = self._recovery
        recovery.cc = self._builder.cc = cc
        self._builder.restart_pmtud()  # a new path: its MTU is found anew
        recovery.rtt = RttEstimator(recovery.rtt.initial_rtt)
        self._pacer.follow(cc, recovery.rtt.smoothed_rtt)
