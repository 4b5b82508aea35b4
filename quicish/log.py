"""quicish's loggers, the connection-ID prefix of their lines, and the CLI's wiring.

Loggers, all under ``quicish``. The library adds no handler: until the application
configures logging, Python's last-resort handler shows WARNING and above on stderr (a
missing C core, ``verify=False``, a socket's errors) and nothing below.

* ``quicish.connection``: INFO lifecycle lines (handshake done, path change, close);
* ``quicish.packet``: DEBUG, one line per packet sent, received, lost or dropped
  (:mod:`quicish.packet_log`; attached to a connection only if enabled when it starts);
* ``quicish.endpoint``: a socket's troubles and a server's admission pressure (WARNING);
* ``quicish``: the rest (engine and TLS details at DEBUG, library misuse at WARNING).

Every line about one connection starts with ``[<ODCID hex>]``: the original destination
connection ID, which the client picks for its first Initial and both ends know, so the two
ends' lines share it, and which names the connection's qlog files. Records also carry it as
the ``connection_id`` attribute, with ``role`` (``client``/``server``), for formats and
filters (other records lack them).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, Protocol, TextIO

from .errors import ErrorCode
from .tls.alerts import Alert

ROOT = "quicish"
CONNECTION = "quicish.connection"
ENDPOINT = "quicish.endpoint"
PACKET = "quicish.packet"

#: The CLI's line format: time, level, logger, message (which starts with the ID).
CLI_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class ConnectionLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger whose lines start with ``[<connection ID hex>]`` and whose records carry
    ``connection_id`` and ``role`` (``client``/``server``)."""

    def __init__(self, logger: logging.Logger, cid: bytes, role: str = "-") -> None:
        ident = cid.hex() or "-"
        super().__init__(logger, {"connection_id": ident, "role": role})
        self.prefix = f"[{ident}] "

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = self.extra
        return self.prefix + str(msg), kwargs


def close_code(code: int, application: bool) -> str:
    """``0xa (PROTOCOL_VIOLATION)``, ``0x128 (CRYPTO_ERROR handshake_failure)``,
    ``0x0 (application)``: a close's code and its name."""
    if application:
        return f"{code:#x} (application)"
    if ErrorCode.CRYPTO_ERROR <= code <= 0x1FF:
        alert = code - ErrorCode.CRYPTO_ERROR
        try:
            name = Alert(alert).name.lower()
        except ValueError:
            name = f"alert {alert}"
        return f"{code:#x} (CRYPTO_ERROR {name})"
    try:
        return f"{code:#x} ({ErrorCode(code).name})"
    except ValueError:
        return f"{code:#x} (unknown)"


def address(addr: Any) -> str:
    """``host:port`` (``[v6]:port``), ``?`` when unknown."""
    if not addr:
        return "?"
    host = str(addr[0])
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


class _Admission(Protocol):
    """What :class:`AdmissionLog` reads of :class:`quicish.proto.admission.Admission`."""

    mode: str
    retry_threshold: int
    max_half_open: int
    retried: int
    dropped: int

    @property
    def half_open(self) -> int: ...


class AdmissionLog:
    """A server's admission pressure, logged once per episode on ``quicish.endpoint``:
    WARNING when new clients start being refused (a Retry in ``auto`` mode, or dropped at
    ``max_half_open``), INFO when the half-open count is below both limits again. Checked
    once per receive round, not per datagram; Retries of ``always`` mode are its normal
    work, not pressure."""

    def __init__(self, admission: _Admission, where: str) -> None:
        self._admission = admission
        self._where = where
        self._counts = (0, 0)  # (Retries under pressure, drops) seen so far
        self._base: tuple[int, int] | None = None  # the counts before this episode
        self._log = logging.getLogger(ENDPOINT)

    def check(self) -> None:
        a = self._admission
        counts = (a.retried if a.mode == "auto" else 0, a.dropped)
        if counts != self._counts:
            if self._base is None:
                self._base = self._counts
                self._log.warning(
                    "[%s] admission pressure: %d handshakes in progress "
                    "(retry_threshold %d, max_half_open %d): new clients get a Retry%s",
                    self._where,
                    a.half_open,
                    a.retry_threshold,
                    a.max_half_open,
                    " or are dropped" if a.half_open >= a.max_half_open else "",
                )
            self._counts = counts
        elif self._base is not None and a.half_open < min(
            a.max_half_open, a.retry_threshold if a.mode == "auto" else a.max_half_open
        ):
            (retried, dropped), self._base = self._base, None
            self._log.info(
                "[%s] admission pressure over: %d handshakes in progress; %d Retries, "
                "%d clients dropped meanwhile",
                self._where,
                a.half_open,
                counts[0] - retried,
                counts[1] - dropped,
            )


def verbosity_level(verbose: int) -> int:
    """The ``quicish`` logger's level for ``-v`` counts: 0 WARNING, 1 INFO, 2+ DEBUG."""
    return (logging.WARNING, logging.INFO, logging.DEBUG)[min(max(verbose, 0), 2)]


@contextlib.contextmanager
def cli_logging(verbose: int, stream: TextIO | None = None) -> Iterator[logging.Handler]:
    """The ``quicish`` command's logging while it runs: a handler on ``stream`` (stderr)
    with :data:`CLI_FORMAT` on the root logger (WARNING for other libraries) and the
    ``quicish`` loggers at :func:`verbosity_level`; undone on exit."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(CLI_FORMAT))
    root, ours = logging.getLogger(), logging.getLogger(ROOT)
    saved = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    ours.setLevel(verbosity_level(verbose))
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        ours.setLevel(saved[1])
