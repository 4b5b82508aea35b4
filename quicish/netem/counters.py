"""What the relay did to each direction, as plain data (JSON round-trip)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

_DROP_CAUSES = ("loss", "queue", "blackhole", "drop_list")


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
    corrupted: int = 0
    duplicated: int = 0
    reordered: int = 0
    send_errors: int = 0

    @property
    def dropped(self) -> int:
        """Packets dropped for any cause."""
        return (
            self.dropped_loss + self.dropped_queue + self.dropped_blackhole + self.dropped_drop_list
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("dropped_"):
                continue
            out[f.name] = getattr(self, f.name)
        dropped = {cause: getattr(self, f"dropped_{cause}") for cause in _DROP_CAUSES}
        out["dropped"] = {"total": self.dropped, **dropped}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DirectionCounters:
        counters = cls()
        for f in fields(cls):
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "to_server": self.to_server.to_dict(),
            "to_client": self.to_client.to_dict(),
            "clients": self.clients,
            "rebinds": self.rebinds,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        return cls(
            to_server=DirectionCounters.from_dict(data.get("to_server", {})),
            to_client=DirectionCounters.from_dict(data.get("to_client", {})),
            clients=int(data.get("clients", 0)),
            rebinds=int(data.get("rebinds", 0)),
            seed=int(data.get("seed", 0)),
        )
