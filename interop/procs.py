"""Child processes of a cell: a server that runs until stopped, clients with hard timeouts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .peers import REPO

_LISTENING = re.compile(r"listening on (\S+):(\d+)")
_FETCHED = re.compile(r"fetched (\d+) file\(s\), (\d+) bytes in ([0-9.]+) s: ([0-9.]+) Mbit/s")
_KEYVAL = re.compile(r"^([a-z][a-z0-9_]*): (\S.*)$")
_UNSUPPORTED = ("not implemented", "unrecognized arguments", "invalid choice")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_udp_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python ... serve``; `start` waits for its "listening on" line."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.port: int | None = None

    def start(self, timeout: float) -> str | None:
        """None once listening, else why it failed (exit code and output)."""
        self._proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._reader.join(1.0)
                if self._ready.is_set():
                    break
                code = self._proc.poll()
                self.stop()
                tail = " | ".join(self.lines[-3:]) or "no output"
                what = (
                    f"exited with {code}"
                    if code is not None
                    else f"not listening after {timeout} s"
                )
                return f"server {what}: {tail}"
        return None

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        with open(self.log, "w") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                line = line.rstrip("\n")
                self.lines.append(line)
                m = _LISTENING.search(line)
                if m and not self._ready.is_set():
                    self.port = int(m.group(2))
                    self._ready.set()

    @property
    def exit_code(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(3.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._reader is not None:
            self._reader.join(2.0)


@dataclass
class ClientRun:
    """What one client process did."""

    argv: list[str]
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    elapsed: float
    timeout: float
    values: dict[str, str] = field(default_factory=dict)  # "key: value" lines
    fetched_bytes: int | None = None
    fetched_seconds: float | None = None

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def unsupported(self) -> str | None:
        """The client's own "not implemented"-style message, when it exited 2 with one."""
        if self.returncode != 2:
            return None
        for line in (self.stderr + "\n" + self.stdout).splitlines():
            if any(marker in line for marker in _UNSUPPORTED):
                return line.strip()
        return None

    def failure(self) -> str | None:
        if self.timed_out:
            return f"client killed after {self.timeout:.0f} s"
        if self.returncode != 0:
            tail = [ln for ln in self.stderr.splitlines() if ln.strip()][-2:]
            return f"client exited {self.returncode}: {' | '.join(tail) or 'no stderr'}"
        return None

    @property
    def kbps(self) -> float | None:
        if self.fetched_bytes is None or not self.fetched_seconds:
            return None
        return self.fetched_bytes * 8 / self.fetched_seconds / 1000


def run_client(argv: list[str], timeout: float, log: Path) -> ClientRun:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=max(timeout, 0.1))
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    elapsed = time.monotonic() - start
    log.write_text(
        f"$ {' '.join(argv[:12])}{' ...' if len(argv) > 12 else ''}\n"
        f"# exit {code} after {elapsed:.2f} s\n--- stdout\n{out}--- stderr\n{err}"
    )
    run = ClientRun(argv, code, out, err, elapsed, timeout)
    for line in out.splitlines():
        m = _KEYVAL.match(line.strip())
        if m:
            run.values[m.group(1)] = m.group(2).strip()
        f = _FETCHED.search(line)
        if f:
            run.fetched_bytes = int(f.group(2))
            run.fetched_seconds = float(f.group(3))
    return run


class Background:
    """A client left running (the cross-traffic competitor); `stop` kills it."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._fh = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> int | None:
        code = self.proc.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._fh.close()
        return code
