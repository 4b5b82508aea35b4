"""Network impairment lab: a loopback UDP relay with delay, rate, loss, corruption,
duplication, reordering, blackholes and NAT rebinding, in its own process.

>>> from quicish.netem import Netem, LinkConfig
>>> with Netem(("127.0.0.1", 4433), both=LinkConfig(delay_ms=15, rate_mbit=10, queue=25)) as n:
...     ...  # clients send to n.address
>>> n.final_counters.to_client.dropped

Command line: ``python -m quicish.netem --help``.
"""

from .config import LinkConfig, RelaySettings
from .counters import Counters, DirectionCounters
from .process import Netem, NetemError

__all__ = ["Counters", "DirectionCounters", "LinkConfig", "Netem", "NetemError", "RelaySettings"]
