"""Key exchange groups (RFC 8446 section 4.2.7): x25519, secp256r1, secp384r1."""

from __future__ import annotations

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


MAX_SPARE_KEYS = 4  # key pairs per group made ahead of need, at most
# Key pairs made ahead of need by stock_key_share(); each leaves the list when it is used.
_spare_keys: dict[int, list[tuple[KeyExchangePrivate, bytes]]] = {}


def _generate(group: int) -> tuple[KeyExchangePrivate, bytes]:
    if group == X25519:
        key = x25519.X25519PrivateKey.generate()
        return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    if group in _CURVES:
        eckey = ec.generate_private_key(_CURVES[group]())
        return eckey, eckey.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    raise ValueError(f"unsupported group {group:#06x}")


def stock_key_share(group: int) -> None:
    """Make one ephemeral key pair of ``group`` now, for the next :class:`KeyShare` of
    that group: an idle moment takes the key generation off a later handshake's critical
    path. Every pair is used once (a handshake takes it out of the stock)."""
    spares = _spare_keys.setdefault(group, [])
    if len(spares) < MAX_SPARE_KEYS:
        spares.append(_generate(group))


class KeyShare:
    """An ephemeral key pair of one group (a stocked one when there is one)."""

    __slots__ = ("group", "private_key", "public_bytes")

    def __init__(self, group: int) -> None:
        self.group = group
        self.private_key: KeyExchangePrivate
        try:  # (pop, not check-then-pop: event loops in other threads may share the stock)
            self.private_key, self.public_bytes = _spare_keys[group].pop()
        except (KeyError, IndexError):
            self.private_key, self.public_bytes = _generate(group)

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
