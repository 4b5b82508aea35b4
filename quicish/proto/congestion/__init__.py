"""Pluggable congestion control: NewReno (RFC 9002) and CUBIC (RFC 9438)."""

from __future__ import annotations

from ...errors import ConfigError
from .base import CongestionController, initial_window
from .cubic import Cubic
from .newreno import NewReno

__all__ = ["CongestionController", "Cubic", "NewReno", "create", "initial_window"]

_FACTORIES: dict[str, type[CongestionController]] = {
    "cubic": Cubic,
    "newreno": NewReno,
    "reno": NewReno,
}


def create(name: str, max_datagram_size: int) -> CongestionController:
    """A fresh controller by name ("cubic", "newreno"; case-insensitive)."""
    factory = _FACTORIES.get(name.lower())
    if factory is None:
        raise ConfigError(
            f"unknown congestion controller {name!r}; choose from {sorted(_FACTORIES)}"
        )
    return factory(max_datagram_size)
