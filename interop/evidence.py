"""What a cell produced (`Evidence`) and its verdict (`Result`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from quicish.netem import Counters

from .analysis import Analysis
from .certs import ServerCert
from .peers import Pair
from .procs import ClientRun
from .scenarios import Scenario
from .tap import Record, TapSession

PASSED, FAILED, UNSUPPORTED = "passed", "failed", "unsupported"


@dataclass
class Result:
    scenario: str
    pair: str  # Pair.label
    status: str  # passed / failed / unsupported
    reason: str = ""
    kbps: float | None = None
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def cell(self) -> str:
        """The text of the matrix cell."""
        text = self.status if self.status == PASSED else f"{self.status}: {self.reason}"
        if self.kbps is not None:
            text += f" ({self.kbps:,.0f} kbit/s)"
        return text


@dataclass
class Cross:
    """The cross-traffic measurement: both flows over the measured flow's lifetime."""

    measured_kbps: float
    competitor_kbps: float
    jain: float
    window: float
    competitor_exit: int | None


@dataclass
class Evidence:
    scenario: Scenario
    pair: Pair
    workdir: Path
    cert: ServerCert
    expected: list[dict[str, str]]  # per run: {file name: sha256}
    runs: list[ClientRun] = field(default_factory=list)
    file_errors: list[str | None] = field(default_factory=list)  # per run
    counters: Counters | None = None
    records: list[Record] = field(default_factory=list)
    sessions: list[TapSession] = field(default_factory=list)
    analysis: Analysis | None = None
    keylog_lines: int = 0
    cross: Cross | None = None
    server_output: list[str] = field(default_factory=list)
    server_exit: int | None = None

    def value(self, key: str, run: int = -1) -> str | None:
        """A "key: value" line the client printed in run ``run``."""
        if not self.runs:
            return None
        return self.runs[run].values.get(key)
