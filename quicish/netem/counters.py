"""What the relay did to each direction and each flow, as plain data (JSON round-trip).

Queueing delay is kept as a histogram of 0.1 ms bins (sparse: only bins that were hit),
enough for percentiles without keeping every sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

_DROP_CAUSES = ("loss", "queue", "blackhole", "drop_list", "mtu")
DELAY_BIN = 0.0001  # seconds: resolution of the queueing-delay histogram


@dataclass(slots=True)
class QueueDelay:
    """Time packets waited in the bottleneck queue before their serialisation began
    (0 for a packet that found the link idle); dropped packets are not counted."""

    count: int = 0
    total: float = 0.0  # seconds
    max: float = 0.0
    bins: dict[int, int] = field(default_factory=dict)  # bin index -> packets

    def add(self, wait: float) -> None:
        self.count += 1
        self.total += wait
        if wait > self.max:
            self.max = wait
        index = int(wait / DELAY_BIN)
        self.bins[index] = self.bins.get(index, 0) + 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, pct: float) -> float:
        """The ``pct`` percentile (0-100) in seconds, to the bin's upper edge; 0 if empty."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(pct / 100.0 * self.count))
        seen = 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen >= rank:
                return min((index + 1) * DELAY_BIN, self.max)
        return self.max

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total": self.total,
            "max": self.max,
            "p50": self.percentile(50),
            "p90": self.percentile(90),
            "p99": self.percentile(99),
            "bins": {str(k): v for k, v in sorted(self.bins.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueDelay:
        bins = {int(k): int(v) for k, v in data.get("bins", {}).items()}
        return cls(int(data.get("count", 0)), float(data.get("total", 0.0)),
                   float(data.get("max", 0.0)), bins)  # fmt: skip


@dataclass(slots=True)
class FlowCounters:
    """Bytes and packets the relay forwarded for one client session (one flow)."""

    client: str = ""  # "host:port" of the client
    upstream: str = ""  # "host:port" of the server it talks to
    to_server_bytes: int = 0
    to_server_packets: int = 0
    to_client_bytes: int = 0
    to_client_packets: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlowCounters:
        out = cls(str(data.get("client", "")), str(data.get("upstream", "")))
        for f in fields(cls)[2:]:
            setattr(out, f.name, int(data.get(f.name, 0)))
        return out


@dataclass(slots=True)
class DirectionCounters:
    """Counts for one direction. ``forwarded`` includes duplicates and counts sends."""

    received: int = 0
    received_bytes: int = 0
    forwarded: int = 0
    forwarded_bytes: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_blackhole: int = 0
    dropped_drop_list: int = 0
    dropped_mtu: int = 0  # larger than the link's ``mtu``
    corrupted: int = 0
    duplicated: int = 0
    reordered: int = 0
    send_errors: int = 0
    queue_delay: QueueDelay = field(default_factory=QueueDelay)

    @property
    def dropped(self) -> int:
        """Packets dropped for any cause."""
        return (
            self.dropped_loss
            + self.dropped_queue
            + self.dropped_blackhole
            + self.dropped_drop_list
            + self.dropped_mtu
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("dropped_") or f.name == "queue_delay":
                continue
            out[f.name] = getattr(self, f.name)
        out["queue_delay"] = self.queue_delay.to_dict()
        dropped = {cause: getattr(self, f"dropped_{cause}") for cause in _DROP_CAUSES}
        out["dropped"] = {"total": self.dropped, **dropped}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DirectionCounters:
        counters = cls()
        for f in fields(cls):
            if f.name == "queue_delay":
                counters.queue_delay = QueueDelay.from_dict(data.get("queue_delay", {}))
                continue
            if f.name.startswith("dropped_"):
                value = data.get("dropped", {}).get(f.name[len("dropped_") :], 0)
            else:
                value = data.get(f.name, 0)
            setattr(counters, f.name, int(value))
        return counters


@dataclass(slots=True)
class Counters:
    """Counts of both directions plus relay-wide facts."""

    to_server: DirectionCounters = field(default_factory=DirectionCounters)
    to_client: DirectionCounters = field(default_factory=DirectionCounters)
    clients: int = 0
    rebinds: int = 0
    seed: int = 0
    flows: list[FlowCounters] = field(default_factory=list)  # one per client session

    def to_dict(self) -> dict[str, Any]:
        return {
            "to_server": self.to_server.to_dict(),
            "to_client": self.to_client.to_dict(),
            "clients": self.clients,
            "rebinds": self.rebinds,
            "seed": self.seed,
            "flows": [flow.to_dict() for flow in self.flows],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        return cls(
            to_server=DirectionCounters.from_dict(data.get("to_server", {})),
            to_client=DirectionCounters.from_dict(data.get("to_client", {})),
            clients=int(data.get("clients", 0)),
            rebinds=int(data.get("rebinds", 0)),
            seed=int(data.get("seed", 0)),
            flows=[FlowCounters.from_dict(flow) for flow in data.get("flows", [])],
        )
