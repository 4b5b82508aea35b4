"""Relay configuration: per-direction impairments (`LinkConfig`) and relay settings."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import ConfigError

Address = tuple[str, int]

DEFAULT_QUEUE = 1000
DEFAULT_BURST = 1
DEFAULT_REORDER_GAP = 2
DEFAULT_REORDER_HOLD_MS = 50.0


@dataclass(frozen=True)
class LinkConfig:
    """Impairments of one direction of the link; ``None`` means unset.

    Unset fields inherit from the ``both`` config, and are off when unset there too.
    Percentages are 0-100. ``burst`` applies to loss and corruption events: each event
    hits ``burst`` consecutive packets, and the long-run fraction hit stays ``*_pct``.
    ``drop_list`` holds 1-based packet indices of this direction (all clients counted).
    ``blackhole`` is ``(on_s, off_s)``: the link works ``on_s`` seconds, then drops
    everything for ``off_s`` seconds, repeating from the relay's start.
    ``mtu`` drops every datagram whose UDP payload is larger (a path MTU the endpoints
    do not know; the relay's own sockets carry up to 65507 bytes).
    ``queue`` (default 1000) is the drop-tail limit of packets waiting behind the rate
    limiter. A reordered packet is held back until ``reorder_gap`` later packets have
    entered the link, or at most ``reorder_hold_ms``. Jitter never reorders packets.
    """

    delay_ms: float | None = None
    jitter_ms: float | None = None
    rate_mbit: float | None = None
    queue: int | None = None
    loss_pct: float | None = None
    corrupt_pct: float | None = None
    burst: int | None = None
    duplicate_pct: float | None = None
    reorder_pct: float | None = None
    reorder_gap: int | None = None
    reorder_hold_ms: float | None = None
    drop_list: tuple[int, ...] | None = None
    blackhole: tuple[float, float] | None = None
    mtu: int | None = None

    def merged(self, override: LinkConfig) -> LinkConfig:
        """This config with every field that ``override`` sets replaced."""
        changes = {
            f.name: getattr(override, f.name)
            for f in fields(override)
            if getattr(override, f.name) is not None
        }
        return replace(self, **changes)

    def validate(self) -> None:
        """Raise `ConfigError` naming the first bad field."""
        for name in ("loss_pct", "corrupt_pct", "duplicate_pct", "reorder_pct"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 100.0:
                raise ConfigError(f"{name} must be within 0..100, got {value}")
        for name in ("delay_ms", "jitter_ms", "reorder_hold_ms"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        if self.rate_mbit is not None and self.rate_mbit <= 0:
            raise ConfigError(f"rate_mbit must be > 0, got {self.rate_mbit}")
        for name in ("queue", "burst", "reorder_gap", "mtu"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.drop_list is not None and any(i < 1 for i in self.drop_list):
            raise ConfigError("drop_list indices are 1-based")
        if self.blackhole is not None:
            on_s, off_s = self.blackhole
            if on_s <= 0 or off_s < 0:
                raise ConfigError(f"blackhole needs on > 0 and off >= 0, got {self.blackhole}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinkConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown link settings: {sorted(unknown)}")
        values = dict(data)
        if values.get("drop_list") is not None:
            values["drop_list"] = tuple(int(i) for i in values["drop_list"])
        if values.get("blackhole") is not None:
            on_s, off_s = values["blackhole"]
            values["blackhole"] = (float(on_s), float(off_s))
        return cls(**values)


def check_loopback(address: Address, what: str) -> Address:
    """Return ``address`` with "localhost" resolved; raise unless it is a loopback IP."""
    host, port = address
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"{what}: {host!r} is not an IP address") from None
    if not ip.is_loopback:
        raise ConfigError(f"{what}: {host} is not a loopback address (netem is loopback-only)")
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what}: bad port {port}")
    return host, port


@dataclass(frozen=True)
class RelaySettings:
    """Everything the relay process needs; JSON-serialisable for the child process."""

    upstream: Address
    listen: Address = ("127.0.0.1", 0)
    both: LinkConfig = field(default_factory=LinkConfig)
    to_server: LinkConfig = field(default_factory=LinkConfig)
    to_client: LinkConfig = field(default_factory=LinkConfig)
    rebind_port: tuple[float, float] | None = None
    rebind_addr: bool = False
    seed: int | None = None
    idle_timeout: float | None = 300.0
    #: more servers behind the same bottleneck: one more listen socket each (relay.py)
    more_upstreams: tuple[Address, ...] = ()

    def link(self, direction: str) -> LinkConfig:
        """The effective config of ``direction`` ("to_server" or "to_client")."""
        specific: LinkConfig = getattr(self, direction)
        return self.both.merged(specific)

    def validate(self) -> RelaySettings:
        """Check everything; return settings with addresses normalised."""
        upstream = check_loopback(self.upstream, "upstream")
        listen = check_loopback(self.listen, "listen")
        if upstream[1] == 0:
            raise ConfigError("upstream needs a port")
        more = tuple(check_loopback(a, "more_upstreams") for a in self.more_upstreams)
        for extra in more:
            if extra[1] == 0:
                raise ConfigError("more_upstreams: each needs a port")
            if ipaddress.ip_address(extra[0]).version != ipaddress.ip_address(upstream[0]).version:
                raise ConfigError("more_upstreams: same IP version as upstream")
        for direction in ("to_server", "to_client"):
            self.link(direction).validate()
        if self.rebind_port is not None:
            first, every = self.rebind_port
            if first < 0 or every <= 0:
                raise ConfigError(
                    f"rebind_port needs first >= 0 and every > 0, got {self.rebind_port}"
                )
        if self.rebind_addr:
            if self.rebind_port is None:
                raise ConfigError("rebind_addr needs rebind_port (when to rebind)")
            if ipaddress.ip_address(upstream[0]).version != 4:
                raise ConfigError("rebind_addr needs IPv4: ::1 is the only IPv6 loopback address")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigError("idle_timeout must be > 0")
        return replace(self, upstream=upstream, listen=listen, more_upstreams=more)

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "upstream": list(self.upstream),
            "listen": list(self.listen),
            "both": self.both.to_dict(),
            "to_server": self.to_server.to_dict(),
            "to_client": self.to_client.to_dict(),
            "rebind_port": list(self.rebind_port) if self.rebind_port else None,
            "rebind_addr": self.rebind_addr,
            "seed": self.seed,
            "idle_timeout": self.idle_timeout,
            "more_upstreams": [list(a) for a in self.more_upstreams],
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> RelaySettings:
        data = json.loads(text)
        rebind = data.get("rebind_port")
        return cls(
            upstream=(str(data["upstream"][0]), int(data["upstream"][1])),
            listen=(str(data["listen"][0]), int(data["listen"][1])),
            both=LinkConfig.from_dict(data.get("both", {})),
            to_server=LinkConfig.from_dict(data.get("to_server", {})),
            to_client=LinkConfig.from_dict(data.get("to_client", {})),
            rebind_port=(float(rebind[0]), float(rebind[1])) if rebind else None,
            rebind_addr=bool(data.get("rebind_addr", False)),
            seed=data.get("seed"),
            idle_timeout=data.get("idle_timeout"),
            more_upstreams=tuple((str(a[0]), int(a[1])) for a in data.get("more_upstreams", [])),
        )
