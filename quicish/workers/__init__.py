"""Several worker processes on one UDP port (``serve(..., workers=N)``, the supervisor in
:mod:`quicish.aio.workers`): the kernel's steering program (:mod:`.steering`) and the 0-RTT
strike register the workers share (:mod:`.strike`). docs/deployment.md says how to run them."""

from .strike import SharedStrikeRegister

__all__ = ["SharedStrikeRegister"]
