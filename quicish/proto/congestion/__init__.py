"""Pluggable congestion control: NewReno (RFC 9002), CUBIC (RFC 9438) and BBRv3."""

from __future__ import annotations

from ...errors import ConfigError
from .base import CongestionController, initial_window
from .bbr import Bbr
from .cubic import Cubic
from .newreno import NewReno

__all__ = ["Bbr", "CongestionController", "Cubic", "NewReno", "create", "initial_window"]

_FACTORIES: dict[str, type[CongestionController]] = {
    "bbr": Bbr,
    "cubic": Cubic,
    "newreno": NewReno,
    "reno": NewReno,
}


def create(name: str, max_datagram_size: int) -> CongestionController:
    """A fresh controller by name ("cubic", "newreno", "bbr"; case-insensitive)."""
    factory = _FACTORIES.get(name.lower())
    if factory is None:
        raise ConfigError(
            f"unknown congestion controller {name!r}; choose from {sorted(_FACTORIES)}"
        )
    return factory(max_datagram_size)
