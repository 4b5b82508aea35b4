"""QUIC-LB: routable connection IDs (draft-ietf-quic-load-balancers).

A load balancer holding a :class:`QuicLbConfig` reads the server ID of a CID with
:func:`decode`; a server issues its CIDs from a :class:`CidFormat` (``Config.cid_format``).
"""

from .cids import CidFormat, config_id_of, decode, decode_nonce, encode
from .params import UNROUTABLE, QuicLbConfig

__all__ = [
    "UNROUTABLE",
    "CidFormat",
    "QuicLbConfig",
    "config_id_of",
    "decode",
    "decode_nonce",
    "encode",
]
