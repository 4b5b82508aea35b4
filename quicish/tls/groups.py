"""Key exchange groups (RFC 8446 section 4.2.7): x25519, secp256r1, secp384r1."""

from __future__ import annotations

from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .alerts import Alert, alert

X25519 = 0x001D
SECP256R1 = 0x0017
SECP384R1 = 0x0018

GROUP_IDS = {"x25519": X25519, "secp256r1": SECP256R1, "secp384r1": SECP384R1}
GROUP_NAMES = {v: k for k, v in GROUP_IDS.items()}
DEFAULT_GROUPS = ["x25519", "secp256r1", "secp384r1"]

_CURVES: dict[int, type[ec.EllipticCurve]] = {SECP256R1: ec.SECP256R1, SECP384R1: ec.SECP384R1}
_POINT_SIZES = {SECP256R1: 65, SECP384R1: 97}

KeyExchangePrivate = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey


def group_ids(names: list[str] | None) -> list[int]:
    """Group code points for names (None means the defaults); ValueError on unknown names."""
    ids = []
    for name in DEFAULT_GROUPS if names is None else names:
        if name not in GROUP_IDS:
            raise ValueError(f"unsupported group {name!r} (supported: {', '.join(GROUP_IDS)})")
        ids.append(GROUP_IDS[name])
    if not ids:
        raise ValueError("groups must not be empty")
    return ids


class KeyPairSource(Protocol):
    """Key pairs made ahead of need (``proto.handshake_stock.HandshakeStock``)."""

    def take_key_pair(self, group: int) -> tuple[KeyExchangePrivate, bytes] | None:
        """A stocked (private key, public bytes) of ``group``, taken out; or None."""
        ...


def generate_key_pair(group: int) -> tuple[KeyExchangePrivate, bytes]:
    """A new ephemeral (private key, public bytes) of ``group``."""
    if group == X25519:
        key = x25519.X25519PrivateKey.generate()
        return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if group in _CURVES:
        eckey = ec.generate_private_key(_CURVES[group]())
        return eckey, eckey.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raise ValueError(f"unsupported group {group:#06x}")


class KeyShare:
    """An ephemeral key pair of one group (taken from ``stock`` when it has one)."""

    __slots__ = ("group", "private_key", "public_bytes")

    def __init__(self, group: int, stock: KeyPairSource | None = None) -> None:
        self.group = group
        pair = stock.take_key_pair(group) if stock is not None else None
        self.private_key, self.public_bytes = pair or generate_key_pair(group)

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret; ``illegal_parameter`` for an invalid peer share."""
        try:
            if isinstance(self.private_key, x25519.X25519PrivateKey):
                if len(peer_public) != 32:
                    raise ValueError("x25519 key share must be 32 bytes")
                peer_x = x25519.X25519PublicKey.from_public_bytes(peer_public)
                return self.private_key.exchange(peer_x)
            if len(peer_public) != _POINT_SIZES[self.group] or peer_public[0] != 4:
                raise ValueError("EC key share must be an uncompressed point")
            curve = _CURVES[self.group]()
            peer_ec = ec.EllipticCurvePublicKey.from_encoded_point(curve, peer_public)
            return self.private_key.exchange(ec.ECDH(), peer_ec)
        except ValueError as exc:
            raise alert(Alert.ILLEGAL_PARAMETER, f"invalid key share: {exc}") from None
