"""``serve(..., workers=N)``: N worker processes on one UDP port, and their supervisor.

The supervisor (the calling process) binds N sockets to the port with ``SO_REUSEPORT`` in
worker order, attaches the steering program (:mod:`quicish.workers.steering`) and keeps
the sockets open for the pool's life: the group's index of a socket is then fixed, and
worker i always owns socket i. Each worker is a forked child that serves on its socket
with its own QUIC-LB server ID (the format's last server-ID octet is the worker index), the
pool's secrets (ticket, token and reset keys, made once here when the config names none)
and one shared 0-RTT strike register. A worker that dies is forked again on the same
socket and index (datagrams that arrived meanwhile wait in the socket); the others keep
their connections. A worker that exits cleanly (told to stop by a signal from outside, as
Ctrl-C sends the whole process group) is not replaced; when all have, the pool is closed.
``shutdown()`` (the CLI's SIGTERM): each worker stops accepting, lets its connections end
for at most ``drain_timeout`` seconds, closes the rest and exits.

Without Linux's ``SO_ATTACH_REUSEPORT_CBPF`` (or when attaching fails) the pool warns and
runs one worker; without ``os.fork`` it refuses (ConfigError).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sized
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from ..config import Config
from ..errors import ConfigError, QuicError
from ..keyfile import FleetSecrets
from ..lb import CidFormat, QuicLbConfig
from ..tls.tickets import StrikeRegister
from ..udp import Address, UdpSocket
from ..workers.steering import MAX_WORKERS, attach, bind_group, steering_program
from ..workers.strike import SharedStrikeRegister

logger = logging.getLogger("quicish")

# Without a cid_format: a plaintext format whose server ID is the worker index (8-byte CIDs).
DEFAULT_LB = QuicLbConfig(config_id=0, server_id_length=1, nonce_length=6)
READY_TIMEOUT = 10.0  # seconds a new worker may take to start serving
RESTART_DELAY = 1.0  # a worker that dies within this of its start is restarted this late
KILL_GRACE = 2.0  # seconds past the drain before the supervisor kills a worker

_current: int | None = None


def current_worker() -> int | None:
    """This process's worker index, or None outside a worker."""
    return _current


class WorkerServer(Protocol):
    """What a worker needs of the server it runs (``quicish.Server``)."""

    @property
    def connections(self) -> Sized: ...

    def stop_accepting(self) -> None: ...

    def close(self) -> None: ...


# Runs the server of one worker on its socket: (socket, config, strike register).
StartServer = Callable[[UdpSocket, Config, StrikeRegister], Awaitable[WorkerServer]]
Runner = Callable[[Coroutine[Any, Any, None]], None]


class WorkerError(QuicError):
    """A worker failed to start."""


def default_workers() -> int:
    """One worker per CPU."""
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def worker_format(base: CidFormat | None, index: int) -> CidFormat:
    """Worker ``index``'s CID format: ``base`` (or :data:`DEFAULT_LB`) with the server ID's
    last octet set to the index."""
    if base is None:
        return CidFormat(DEFAULT_LB, bytes((index,)))
    return CidFormat(base.config, base.server_id[:-1] + bytes((index,)))


def shared_secrets(config: Config) -> FleetSecrets:
    """The pool's secrets: the config's file or object, else fresh keys made once here
    (keeping ``stateless_reset_key`` if set) for every worker."""
    if isinstance(config.secrets, FleetSecrets):
        return config.secrets
    if config.secrets is not None:
        return FleetSecrets.load(config.secrets)
    fresh = FleetSecrets.generate()
    if config.stateless_reset_key is not None:
        fresh = dataclasses.replace(fresh, reset_key=config.stateless_reset_key)
    return fresh


class WorkerPool:
    """N worker processes serving one UDP port (what ``await serve(..., workers=N)`` gives)."""

    def __init__(
        self,
        host: str,
        port: int,
        config: Config,
        start: StartServer,
        runner: Runner,
        *,
        workers: int,
        drain_timeout: float,
        strike_register: StrikeRegister | None = None,
    ) -> None:
        if not hasattr(os, "fork"):
            raise ConfigError("workers need os.fork (POSIX); serve without workers here")
        count = workers or default_workers()
        fmt = config.cid_format
        lb = DEFAULT_LB if fmt is None else fmt.config
        program = steering_program(lb, count) if count > 1 else None  # checks the format
        secrets = shared_secrets(config)  # a bad secrets file fails here, not in each worker
        socks = bind_group(host, port, count)
        if program is not None:
            try:
                attach(socks[0], program)
            except OSError as exc:
                logger.warning(
                    "workers: cannot attach the reuseport steering program (%s): one worker "
                    "serves instead of %d",
                    exc,
                    count,
                )
                for sock in socks[1:]:
                    sock.close()
                socks, count = socks[:1], 1
        self.steered = count > 1
        self.count = count
        self.drain_timeout = drain_timeout
        self._config = dataclasses.replace(config, secrets=secrets, stateless_reset_key=None)
        self._fmt = fmt
        self._start = start
        self._runner = runner
        self._socks = socks
        self._own_register: SharedStrikeRegister | None = None
        if strike_register is None:
            strike_register = self._own_register = SharedStrikeRegister()
        self.strike_register = strike_register
        self._procs: list[BaseProcess | None] = [None] * count
        self._started: list[float] = [0.0] * count
        self.restarts = 0
        self._stopping = False
        self._running = False
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._context = multiprocessing.get_context("fork")
        name = socks[0].getsockname()
        self.address: Address = (name[0], name[1])

    @property
    def pids(self) -> list[int | None]:
        """The process id of each worker (None while one is being replaced)."""
        return [p.pid if p is not None and p.is_alive() else None for p in self._procs]

    async def start(self) -> WorkerPool:
        """Fork every worker and wait until each serves."""
        try:
            await asyncio.gather(*(self._spawn(i) for i in range(self.count)))
        except BaseException:
            self.close()
            raise
        self._running = True  # from now on a worker that ends is replaced
        return self

    async def _spawn(self, index: int) -> None:
        read_fd, write_fd = os.pipe()
        proc = self._context.Process(
            target=self._child,
            args=(index, write_fd),
            name=f"quicish-worker-{index}",
            daemon=True,
        )
        proc.start()
        os.close(write_fd)
        self._procs[index] = proc
        self._started[index] = time.monotonic()
        self._loop.add_reader(proc.sentinel, self._on_exit, index, proc)
        try:
            await self._wait_ready(proc, read_fd)
        finally:
            os.close(read_fd)

    async def _wait_ready(self, proc: BaseProcess, read_fd: int) -> None:
        ready = self._loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(os.read(read_fd, 1))

        self._loop.add_reader(read_fd, readable)
        try:
            answer = await asyncio.wait_for(ready, READY_TIMEOUT)
        except asyncio.TimeoutError:
            proc.kill()
            raise WorkerError(f"{proc.name} did not start within {READY_TIMEOUT:g} s") from None
        finally:
            self._loop.remove_reader(read_fd)
        if answer != b"1":  # the pipe closed: the child ended before serving
            proc.join(1.0)
            raise WorkerError(f"{proc.name} failed to start (exit code {proc.exitcode})")

    def _on_exit(self, index: int, proc: BaseProcess) -> None:
        self._loop.remove_reader(proc.sentinel)
        proc.join()  # it is exiting (its end of the sentinel closed): reap it now
        if self._procs[index] is proc:
            self._procs[index] = None
        if self._stopping:
            if all(p is None for p in self._procs):
                self._finish()
            return
        if not self._running:
            return  # still starting: start() reports the failure
        if proc.exitcode == 0:  # it was told to stop (a signal from outside): not replaced
            logger.info("worker %d (pid %s) stopped", index, proc.pid)
            if all(p is None for p in self._procs):
                self._stopping = True
                self._finish()
            return
        logger.warning(
            "worker %d (pid %s) ended with exit code %s: restarting it",
            index,
            proc.pid,
            proc.exitcode,
        )
        self.restarts += 1
        early = time.monotonic() - self._started[index] < RESTART_DELAY
        self._loop.call_later(RESTART_DELAY if early else 0.0, self._restart, index)

    def _restart(self, index: int) -> None:
        if self._stopping or self._procs[index] is not None:
            return
        task = self._loop.create_task(self._spawn(index))
        task.add_done_callback(_log_failure)

    # ---- the child -------------------------------------------------------------------------
    def _child(self, index: int, ready_fd: int) -> None:
        """A worker's process: serve on socket ``index`` until told to stop."""
        global _current
        _current = index
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(-1)  # the parent loop's; ours sets its own
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for i, sock in enumerate(self._socks):
            if i != index:
                sock.close()
        config = dataclasses.replace(self._config, cid_format=worker_format(self._fmt, index))
        with contextlib.suppress(KeyboardInterrupt):
            self._runner(self._serve_child(index, config, ready_fd))
        sys.stdout.flush()

    async def _serve_child(self, index: int, config: Config, ready_fd: int) -> None:
        loop = asyncio.get_running_loop()
        server = await self._start(UdpSocket(self._socks[index]), config, self.strike_register)
        done = loop.create_future()
        parent = os.getppid()

        def close_now() -> None:
            server.close()
            if not done.done():
                done.set_result(None)

        async def drain() -> None:
            server.stop_accepting()
            deadline = loop.time() + self.drain_timeout
            while len(server.connections) and loop.time() < deadline:
                await asyncio.sleep(0.05)
            close_now()

        def watch_parent() -> None:
            if os.getppid() != parent:  # the supervisor is gone: so is the pool
                close_now()
            elif not done.done():
                loop.call_later(0.5, watch_parent)

        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(drain()))
        loop.add_signal_handler(signal.SIGINT, close_now)
        watch_parent()
        os.write(ready_fd, b"1")  # serving, and the signals are ours
        os.close(ready_fd)
        await done

    # ---- stopping --------------------------------------------------------------------------
    def _signal_all(self, sig: int) -> None:
        for proc in self._procs:
            if proc is not None and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    async def shutdown(self) -> None:
        """Graceful stop: workers stop accepting, let their connections end (at most
        ``drain_timeout`` seconds), close the rest and exit."""
        if self._stopping:
            await self.wait_closed()
            return
        self._stopping = True
        self._signal_all(signal.SIGTERM)
        await self._reap(self.drain_timeout + KILL_GRACE)

    def close(self) -> None:
        """Stop now: every worker closes its connections (CONNECTION_CLOSE) and exits."""
        if self._stopping:
            return
        self._stopping = True
        self._signal_all(signal.SIGINT)
        self._loop.create_task(self._reap(KILL_GRACE))

    async def _reap(self, grace: float) -> None:
        if all(p is None for p in self._procs):
            self._finish()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), grace)
        if not self._closed.done():
            self._signal_all(signal.SIGKILL)
            await self.wait_closed()

    def _finish(self) -> None:
        if self._closed.done():
            return
        for sock in self._socks:
            sock.close()
        if self._own_register is not None:
            self._own_register.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        await self.wait_closed()

    async def __aenter__(self) -> WorkerPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _log_failure(task: asyncio.Task[None]) -> None:
    """A replacement that failed to start (its exit schedules the next try)."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("workers: restarting a worker failed: %s", task.exception())
