"""`Netem`: the relay in a child process, as a context manager.

The child is ``python -m quicish.netem --control``: settings go in as one JSON line on
its stdin, commands ("counters", "stop") follow, and it answers with JSON lines on stdout.
A plain subprocess (not multiprocessing) so it works from any script, thread or event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..errors import QuicError
from .config import Address, LinkConfig, RelaySettings
from .counters import Counters

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class NetemError(QuicError):
    """The relay process failed to start, answer or stop."""


class Netem:
    """A UDP relay with impairments between clients and ``upstream``.

    >>> with Netem(("127.0.0.1", 4433), both=LinkConfig(delay_ms=15)) as relay:
    ...     relay.address  # where clients send
    ...     relay.counters()  # live snapshot
    >>> relay.final_counters

    ``more_upstreams``: more servers behind the same bottleneck; ``addresses[i]`` is where
    clients of server ``i`` send (0: ``upstream``). ``counters().flows`` counts each client
    session's bytes; ``to_server.queue_delay`` / ``to_client.queue_delay`` the queueing.
    """

    def __init__(
        self,
        upstream: Address,
        *,
        listen: Address = ("127.0.0.1", 0),
        both: LinkConfig | None = None,
        to_server: LinkConfig | None = None,
        to_client: LinkConfig | None = None,
        rebind_port: tuple[float, float] | None = None,
        rebind_addr: bool = False,
        seed: int | None = None,
        idle_timeout: float | None = 300.0,
        ready_timeout: float = 10.0,
        more_upstreams: tuple[Address, ...] = (),
    ) -> None:
        self.settings = RelaySettings(
            upstream=upstream,
            listen=listen,
            both=both or LinkConfig(),
            to_server=to_server or LinkConfig(),
            to_client=to_client or LinkConfig(),
            rebind_port=rebind_port,
            rebind_addr=rebind_addr,
            seed=seed,
            idle_timeout=idle_timeout,
            more_upstreams=tuple(more_upstreams),
        ).validate()
        self.ready_timeout = ready_timeout
        self.address: Address = ("", 0)
        #: where clients send, one per server: ``upstream``'s, then ``more_upstreams``'
        self.addresses: list[Address] = []
        self.started_at = 0.0  # time.monotonic() of the relay's start (same clock here)
        self.seed = 0
        self.final_counters: Counters | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Netem:
        """Start the relay process and wait until it listens."""
        if self._proc is not None:
            raise NetemError("already started")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "quicish.netem", "--control"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            self._send(self.settings.to_json())
            ready = self._receive("ready", self.ready_timeout)
        except BaseException:
            self._kill()
            raise
        host, port = ready["address"]
        self.address = (str(host), int(port))
        self.addresses = [(str(h), int(p)) for h, p in ready.get("addresses", [ready["address"]])]
        self.started_at = float(ready["started_at"])
        self.seed = int(ready["seed"])
        return self

    def counters(self, timeout: float = 5.0) -> Counters:
        """A live snapshot of the relay's counters (the final ones once stopped)."""
        if self.final_counters is not None:
            return self.final_counters
        self._send("counters")
        return Counters.from_dict(self._receive("counters", timeout))

    def stop(self, timeout: float = 5.0) -> Counters:
        """Stop the relay; return (and keep in `final_counters`) its counts."""
        if self.final_counters is not None:
            return self.final_counters
        if self._proc is None:
            raise NetemError("not started")
        try:
            self._send("stop")
            self.final_counters = Counters.from_dict(self._receive("final", timeout))
            self._proc.wait(timeout)
        finally:
            self._kill()
        return self.final_counters

    def __enter__(self) -> Netem:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
            return
        # keep the body's exception; counts are best effort
        with contextlib.suppress(NetemError, OSError, subprocess.TimeoutExpired):
            self.stop()

    # -- pipe protocol --------------------------------------------------------------

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise NetemError("relay process not running")
        return proc.stdin, proc.stdout

    def _send(self, line: str) -> None:
        stdin, _ = self._pipes()
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise NetemError(f"relay process gone: {exc}") from exc

    def _receive(self, key: str, timeout: float) -> Any:
        _, stdout = self._pipes()
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NetemError(f"relay process did not answer {key!r} within {timeout} s")
            readable, _, _ = select.select([fd], [], [], remaining)
            if readable:
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self._proc.wait() if self._proc is not None else None
                    raise NetemError(f"relay process exited (code {code})")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        message = json.loads(line)
        if "error" in message:
            raise NetemError(f"relay failed: {message['error']}")
        if key not in message:
            raise NetemError(f"expected {key!r} from the relay, got {line!r}")
        return message[key]

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
