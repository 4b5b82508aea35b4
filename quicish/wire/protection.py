"""QUIC packet protection (RFC 9001 section 5; QUIC v2 per RFC 9369).

Key schedule (HKDF-Extract / HKDF-Expand-Label), Initial secrets, AEAD payload
protection, header protection, key update ("quic ku") and the Retry integrity tag.

Hot path: :meth:`PacketProtector.seal_packet` and :meth:`PacketProtector.open_packet`.
For AES-128-GCM and AES-256-GCM each is one C call when the C packet cipher is available
(:data:`quicish.native.PacketCipher`: the system libcrypto through dlopen, header
protection included; ``QUICISH_PURE_CRYPTO=1`` or ``QUICISH_PURE=1`` turn it off). The
Python path below, over ``cryptography``, is the fallback, and ChaCha20-Poly1305 always
takes it; both give the same bytes and raise the same exceptions. On the Python path every
cipher context is created once per key and reused: the AEAD object per :class:`Aead`, the
AES-ECB (or ChaCha20, re-nonced per sample) context per :class:`HeaderProtection`. Nonces
are ``iv XOR pn`` computed on integers.

Receive flow with key phases (1-RTT): call :meth:`PacketProtector.remove_header_protection`
(the header protection key never changes across key updates, so any generation can do
it), read the key phase bit from the plain first byte, decode the full packet number,
pick the generation, then :meth:`PacketProtector.open_payload`. When the key phase is
not in question, :meth:`PacketProtector.open_packet` does it all. Checking the reserved
bits of the plain first byte (PROTOCOL_VIOLATION) is left to the caller, after the
packet has been authenticated.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from quicish import kdf
from quicish.errors import ConfigError, DecryptionError
from quicish.native import PacketCipher as _PacketCipher
from quicish.native.pure import seal_stream_burst as _pure_stream_burst
from quicish.native.pure_reply import AckFields, StreamFields
from quicish.native.pure_reply import seal_reply as _pure_seal_reply

from .pn import decode_packet_number

if TYPE_CHECKING:
    from quicish.native._core import PacketCipher as PacketCipherType

__all__ = [
    "AEAD_TAG_SIZE",
    "INITIAL_SALT_V1",
    "INITIAL_SALT_V2",
    "SAMPLE_SIZE",
    "Aead",
    "CipherSuite",
    "HeaderProtection",
    "PacketProtector",
    "confidentiality_limit",
    "hash_for",
    "hkdf_expand_label",
    "hkdf_extract",
    "initial_secrets",
    "integrity_limit",
    "retry_integrity_tag",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview

# Same values as quicish.wire.packet.QUIC_V1 / QUIC_V2, kept local so this module does not
# depend on packet.py (which imports this one for the Retry tag).
_QUIC_V1 = 0x00000001
_QUIC_V2 = 0x6B3343CF

AEAD_TAG_SIZE = 16
SAMPLE_SIZE = 16
IV_SIZE = 12
INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
INITIAL_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_RETRY_KEY_V1 = bytes.fromhex("be0c690b9f66575a1d766b54e368c84e")
_RETRY_NONCE_V1 = bytes.fromhex("461599d35d632bf2239825bb")
_RETRY_KEY_V2 = bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92")
_RETRY_NONCE_V2 = bytes.fromhex("d86969bc2d7c6d9990efb04a")


class CipherSuite(IntEnum):
    """TLS 1.3 cipher suites usable with QUIC."""

    AES_128_GCM_SHA256 = 0x1301
    AES_256_GCM_SHA384 = 0x1302
    CHACHA20_POLY1305_SHA256 = 0x1303


class _SuiteParams(NamedTuple):
    """A cipher suite's enum member, hash and AEAD key length (also the hp key's length)."""

    suite: CipherSuite
    hash: hashes.HashAlgorithm
    key_len: int


class _VersionParams(NamedTuple):
    """A QUIC version's Initial salt and key derivation labels."""

    salt: bytes
    key_label: bytes
    iv_label: bytes
    hp_label: bytes
    ku_label: bytes


# Looking the suite up here also converts an int to its CipherSuite member, without the
# cost of an enum call per key.
_SUITES: dict[int, _SuiteParams] = {
    s.suite: s
    for s in (
        _SuiteParams(CipherSuite.AES_128_GCM_SHA256, hashes.SHA256(), 16),
        _SuiteParams(CipherSuite.AES_256_GCM_SHA384, hashes.SHA384(), 32),
        _SuiteParams(CipherSuite.CHACHA20_POLY1305_SHA256, hashes.SHA256(), 32),
    )
}

_VERSIONS: dict[int, _VersionParams] = {
    _QUIC_V1: _VersionParams(INITIAL_SALT_V1, b"quic key", b"quic iv", b"quic hp", b"quic ku"),
    _QUIC_V2: _VersionParams(
        INITIAL_SALT_V2, b"quicv2 key", b"quicv2 iv", b"quicv2 hp", b"quicv2 ku"
    ),
}


def _suite_params(suite: int) -> _SuiteParams:
    try:
        return _SUITES[suite]
    except KeyError:
        raise ConfigError(f"unsupported cipher suite {suite:#06x}") from None


def _version_params(version: int) -> _VersionParams:
    try:
        return _VERSIONS[version]
    except KeyError:
        raise ConfigError(f"unsupported QUIC version {version:#010x}") from None


# (suite, version) -> (hash name, (label, length) of key, iv and hp key, CipherSuite member):
# what PacketProtector.from_secret derives, looked up once per suite and version.
_KEY_DERIVATIONS: dict[tuple[int, int], tuple[str, tuple[tuple[bytes, int], ...], CipherSuite]] = {}


def hash_for(suite: int) -> hashes.HashAlgorithm:
    """The handshake hash of ``suite`` (SHA-256 or SHA-384)."""
    return _suite_params(suite).hash


def hkdf_extract(hash: hashes.HashAlgorithm, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869): HMAC-Hash(salt, ikm)."""
    return kdf.hkdf_extract(hash.name, salt, ikm)


def hkdf_expand_label(
    hash: hashes.HashAlgorithm, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """TLS 1.3 HKDF-Expand-Label (RFC 8446 section 7.1); ``label`` without "tls13 "."""
    return kdf.expand_label(hash.name, secret, label, context, length)


_SALT_MACS: dict[int, Callable[[bytes], bytes]] = {}  # version -> HMAC under its Initial salt


def initial_secrets(dcid: bytes, version: int = _QUIC_V1) -> tuple[bytes, bytes]:
    """(client_initial_secret, server_initial_secret) for the client's first DCID."""
    extract = _SALT_MACS.get(version)
    if extract is None:  # HKDF-Extract under the version's (public) salt, its pads hashed once
        extract = _SALT_MACS[version] = kdf.hmac_keyed("sha256", _version_params(version).salt)
    initial = extract(dcid)
    client, server = kdf.expand_labels("sha256", initial, ((b"client in", 32), (b"server in", 32)))
    return client, server


def confidentiality_limit(suite: int) -> int:
    """Packets one key may protect (RFC 9001 6.6); ChaCha20's 2^62 is never reached."""
    _suite_params(suite)
    return 2**62 if suite == CipherSuite.CHACHA20_POLY1305_SHA256 else 2**23


def integrity_limit(suite: int) -> int:
    """Failed decryptions tolerated across all keys of a connection (RFC 9001 6.6)."""
    _suite_params(suite)
    return 2**36 if suite == CipherSuite.CHACHA20_POLY1305_SHA256 else 2**52


class Aead:
    """Payload protection for one key: AEAD with nonce = iv XOR packet number."""

    __slots__ = ("_decrypt", "_encrypt", "_iv", "suite")

    def __init__(self, suite: int, key: bytes, iv: bytes) -> None:
        params = _suite_params(suite)
        if len(key) != params.key_len or len(iv) != IV_SIZE:
            raise ConfigError("wrong AEAD key or IV length")
        self.suite = params.suite
        cipher: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(key) if suite == CipherSuite.CHACHA20_POLY1305_SHA256 else AESGCM(key)
        )
        self._encrypt = cipher.encrypt
        self._decrypt = cipher.decrypt
        self._iv = int.from_bytes(iv, "big")

    def seal(self, pn: int, header: BytesLike, plaintext: BytesLike) -> bytes:
        """Ciphertext + 16-byte tag, with ``header`` as associated data."""
        return self._encrypt((self._iv ^ pn).to_bytes(IV_SIZE, "big"), plaintext, header)

    def open(self, pn: int, header: BytesLike, ciphertext: BytesLike) -> bytes:
        """Plaintext; raises :class:`DecryptionError` when authentication fails."""
        try:
            return self._decrypt((self._iv ^ pn).to_bytes(IV_SIZE, "big"), ciphertext, header)
        except InvalidTag:
            raise DecryptionError("packet authentication failed") from None


_ZERO5 = bytes(5)
_ECB = modes.ECB()  # holds no state: shared by every AES header protection context
_MASK = struct.Struct(">BI")  # mask byte 0 (first byte), mask bytes 1-4 (packet number)
_U32 = struct.Struct(">I")


class HeaderProtection:
    """Header protection mask for one hp key (RFC 9001 5.4.3 and 5.4.4).

    AES suites reuse one AES-ECB encryptor context. ChaCha20 reuses one context too,
    resetting its 16-byte "nonce" (the sample: 4-byte little-endian counter, then the
    12-byte nonce) per packet; with cryptography < 43 (no ``reset_nonce``) it builds a
    cipher per sample.
    """

    __slots__ = ("_key", "_reset_nonce", "_update", "mask_fn", "suite")

    def __init__(self, suite: int, hp_key: bytes) -> None:
        params = _suite_params(suite)
        if len(hp_key) != params.key_len:
            raise ConfigError("wrong header protection key length")
        self.suite = params.suite
        self._key = bytes(hp_key)
        #: ``mask_fn(sample)``: at least 5 mask bytes for a 16-byte sample (no checks).
        self.mask_fn: Callable[[BytesLike], bytes]
        self._reset_nonce: Callable[[BytesLike], None] | None = None
        if suite == CipherSuite.CHACHA20_POLY1305_SHA256:
            ctx = Cipher(algorithms.ChaCha20(self._key, bytes(16)), mode=None).encryptor()
            self._update = ctx.update
            self._reset_nonce = getattr(ctx, "reset_nonce", None)
            self.mask_fn = self._chacha_mask if self._reset_nonce else self._chacha_mask_slow
        else:
            ctx = Cipher(algorithms.AES(self._key), _ECB).encryptor()
            self._update = ctx.update
            self.mask_fn = ctx.update

    def _chacha_mask(self, sample: BytesLike) -> bytes:
        self._reset_nonce(sample)  # type: ignore[misc]
        return self._update(_ZERO5)

    def _chacha_mask_slow(self, sample: BytesLike) -> bytes:
        cipher = Cipher(algorithms.ChaCha20(self._key, bytes(sample)), mode=None)
        return cipher.encryptor().update(_ZERO5)

    def mask(self, sample: BytesLike) -> bytes:
        """The 5-byte mask for a 16-byte ``sample``."""
        if len(sample) != SAMPLE_SIZE:
            raise ValueError("header protection sample must be 16 bytes")
        return self.mask_fn(sample)[:5]


class PacketProtector:
    """All keys for one direction of one packet number space (one key generation).

    ``seal_packet`` / ``open_packet`` apply and remove both layers: header protection
    and the AEAD, in one C call for the AES suites when the C packet cipher is available
    (:attr:`accelerated`). ``next_generation`` derives the keys after a key update.
    """

    __slots__ = (
        "_aead",
        "_cipher",
        "_decrypt",
        "_encrypt",
        "_hp",
        "_hp_root",
        "_iv_int",
        "_mask",
        "hp_key",
        "iv",
        "key",
        "secret",
        "suite",
        "version",
    )

    def __init__(
        self,
        suite: int,
        secret: bytes,
        key: bytes,
        iv: bytes,
        hp_key: bytes,
        version: int = _QUIC_V1,
        hp: HeaderProtection | None = None,
        *,
        accelerate: bool = True,
    ) -> None:
        """Prefer :meth:`from_secret`; ``hp`` lets key updates share the hp context;
        ``accelerate=False`` keeps this key on the Python path (comparisons, benchmarks)."""
        params = _suite_params(suite)
        if len(key) != params.key_len or len(iv) != IV_SIZE or len(hp_key) != params.key_len:
            raise ConfigError("wrong packet protection key, IV or header protection key length")
        self.suite = params.suite
        self.version = version
        self.secret = secret
        self.key = key
        self.iv = iv
        self.hp_key = hp_key
        self._aead: Aead | None = None
        self._hp = hp
        # The first generation of these keys, whose hp context a later one shares.
        self._hp_root: PacketProtector | None = None
        # The C packet cipher (AES suites): seal_packet / open_packet in one call each. The
        # cryptography contexts are then made only if the key-update path needs them.
        self._cipher: PacketCipherType | None = (
            _PacketCipher(key, iv, hp_key)
            if accelerate
            and _PacketCipher is not None
            and self.suite != CipherSuite.CHACHA20_POLY1305_SHA256
            else None
        )
        if self._cipher is None:
            self._python_contexts()

    def _python_contexts(self) -> tuple[Aead, HeaderProtection]:
        """The cryptography AEAD and header protection contexts, made at first need, with
        the hot-path shortcuts of the Python path (one call level less per packet)."""
        aead = self._aead
        hp = self._hp
        if aead is None or hp is None:
            aead = self._aead = Aead(self.suite, self.key, self.iv)
            if hp is None:
                root = self._hp_root
                hp = root.hp if root is not None else HeaderProtection(self.suite, self.hp_key)
                self._hp = hp
            self._encrypt = aead._encrypt
            self._decrypt = aead._decrypt
            self._iv_int = aead._iv
            self._mask = hp.mask_fn
        return aead, hp

    @property
    def aead(self) -> Aead:
        """The payload protection context of the Python path."""
        return self._python_contexts()[0]

    @property
    def hp(self) -> HeaderProtection:
        """The header protection context of the Python path (shared across key updates)."""
        return self._python_contexts()[1]

    @property
    def accelerated(self) -> bool:
        """True when ``seal_packet`` / ``open_packet`` use the C packet cipher."""
        return self._cipher is not None

    @classmethod
    def from_secret(
        cls, suite: int, secret: bytes, version: int = _QUIC_V1, *, accelerate: bool = True
    ) -> PacketProtector:
        """Derive key, iv and hp key from a traffic secret (RFC 9001 5.1)."""
        derivation = _KEY_DERIVATIONS.get((suite, version))
        if derivation is None:
            params = _suite_params(suite)
            labels = _version_params(version)
            derivation = _KEY_DERIVATIONS[suite, version] = (
                params.hash.name,
                (
                    (labels.key_label, params.key_len),
                    (labels.iv_label, IV_SIZE),
                    (labels.hp_label, params.key_len),
                ),
                params.suite,
            )
        name, lengths, member = derivation
        key, iv, hp_key = kdf.expand_labels(name, secret, lengths)
        return cls(member, secret, key, iv, hp_key, version, accelerate=accelerate)

    def next_generation(self) -> PacketProtector:
        """Keys after a key update (RFC 9001 6.1): new secret, key and iv; same hp key."""
        params = _suite_params(self.suite)
        labels = _version_params(self.version)
        name = params.hash.name
        secret = kdf.expand_label(name, self.secret, labels.ku_label, b"", params.hash.digest_size)
        key, iv = kdf.expand_labels(
            name, secret, ((labels.key_label, params.key_len), (labels.iv_label, IV_SIZE))
        )
        # The Python path's hp context is shared: this key's, or when it has none yet (the
        # C path makes none: libcrypto contexts nothing uses) the first generation's, made
        # there at first need.
        hp = self._hp
        nxt = PacketProtector(self.suite, secret, key, iv, self.hp_key, self.version, hp)
        if hp is None:
            nxt._hp_root = self._hp_root or self
        return nxt

    def seal_packet(self, header: BytesLike, payload: BytesLike, pn: int) -> bytes:
        """Protect one packet.

        ``header`` is the plain header ending with the truncated packet number (its
        length in the low two bits of the first byte); ``pn`` is the full packet number.
        Returns the protected header + ciphertext + tag. The payload must be long enough
        for the header protection sample (``pn_length + len(payload) >= 4``), else
        ValueError (a local bug: the sender pads). One C call when :attr:`accelerated`;
        the Python path gives the same bytes and errors.
        """
        cipher = self._cipher
        if cipher is not None:
            return cipher.seal(header, payload, pn)
        first = header[0]
        ct = self._encrypt((self._iv_int ^ pn).to_bytes(IV_SIZE, "big"), payload, header)
        offset = 3 - (first & 0x03)  # 4 - pn_length: where the sample starts in ct
        if len(ct) < offset + SAMPLE_SIZE:
            raise ValueError("payload too short for the header protection sample")
        m0, m4 = _MASK.unpack_from(self._mask(ct[offset : offset + SAMPLE_SIZE]))
        hlen = len(header)
        # one XOR over the header as an integer: first-byte bits and the pn bytes
        bits = 0x0F if first & 0x80 else 0x1F
        xor: int = ((m0 & bits) << (8 * hlen - 8)) | (m4 >> (8 * offset))
        return (int.from_bytes(header, "big") ^ xor).to_bytes(hlen, "big") + ct

    def seal_stream_burst(
        self,
        dcid: BytesLike,
        first: int,
        pn: int,
        largest_acked: int | None,
        skip_pn: int,
        datagram_size: int,
        stream_id: int,
        offset: int,
        data: BytesLike,
        final_size: int | None,
        in_flight: int,
        cwnd: float,
        pacer: tuple[float, float, float, float] | None,
        now: float,
        max_count: int,
    ) -> tuple[list[bytes], list[int], float]:
        """1-RTT packets of one full STREAM frame each, numbered from ``pn`` (header
        ``first`` byte without the pn length bits, to ``dcid``), while the window, the
        pacer's ``(tokens, need, capacity, rate)``, ``data`` (the stream's bytes from
        ``offset``), ``max_count`` and ``skip_pn`` allow: ``(packets, data lengths, pacer
        tokens left)``. One C call when :attr:`accelerated` (native/burst.c), else the
        pure twin over :meth:`seal_packet`; the same bytes either way."""
        args = (
            dcid, first, pn, largest_acked, skip_pn, datagram_size, stream_id, offset, data,
            final_size, in_flight, cwnd, pacer, now, max_count,
        )  # fmt: skip
        cipher = self._cipher
        if cipher is not None:
            return cipher.seal_stream_burst(*args)
        return _pure_stream_burst(self.seal_packet, *args)

    def seal_reply(
        self,
        dcid: BytesLike,
        first: int,
        pn: int,
        pn_len: int,
        ack: bytes,
        stream_id: int,
        offset: int,
        data: BytesLike,
        fin: bool,
    ) -> bytes:
        """One 1-RTT packet of ``ack`` (an ACK frame's bytes, maybe none) and one STREAM
        frame: :meth:`seal_packet` of ``encode_short_header`` (``first``: 0x40 with the spin
        and key phase bits) and ``push_stream_frame``'s bytes, in one C call when
        :attr:`accelerated` (``PacketCipher.seal_reply``), else the pure twin."""
        cipher = self._cipher
        if cipher is not None:
            return cipher.seal_reply(dcid, first, pn, pn_len, ack, stream_id, offset, data, fin)
        return _pure_seal_reply(
            self.seal_packet, dcid, first, pn, pn_len, ack, stream_id, offset, data, fin
        )

    def remove_header_protection(self, packet: BytesLike, pn_offset: int) -> tuple[bytes, int, int]:
        """(plain_header, truncated_pn, pn_length) of one protected packet.

        ``plain_header`` covers the packet's bytes up to and including the packet number,
        with the first byte and the packet number unmasked. Raises
        :class:`DecryptionError` when the packet is too short to sample.
        """
        end = pn_offset + 4 + SAMPLE_SIZE
        if pn_offset < 1 or end > len(packet):
            raise DecryptionError("packet too short for header protection sample")
        cipher = self._cipher
        sample = packet[pn_offset + 4 : end]
        mask = cipher.mask(sample) if cipher is not None else self.hp.mask_fn(sample)
        m0, m4 = _MASK.unpack_from(mask)
        first = packet[0]
        first ^= m0 & (0x0F if first & 0x80 else 0x1F)
        pn_len = (first & 0x03) + 1
        truncated: int = (_U32.unpack_from(packet, pn_offset)[0] ^ m4) >> (32 - 8 * pn_len)
        header = bytes((first,)) + packet[1:pn_offset] + truncated.to_bytes(pn_len, "big")
        return header, truncated, pn_len

    def open_payload(self, plain_header: BytesLike, packet: BytesLike, pn: int) -> bytes:
        """AEAD-open ``packet`` (after the ``len(plain_header)`` header bytes) with the
        full packet number ``pn``; ``plain_header`` comes from
        :meth:`remove_header_protection` (possibly of another key generation).
        Raises :class:`DecryptionError`.
        """
        return self.aead.open(pn, plain_header, packet[len(plain_header) :])

    def open_stream_packet(
        self, packet: BytesLike, pn_offset: int, largest_pn: int
    ) -> tuple[bytes, bytes, int, StreamFields | None, AckFields | None]:
        """:meth:`open_packet`, and, when :attr:`accelerated` (one C call), the
        ``(stream_id, offset, data, fin, with_length)`` of the STREAM frame that is the
        whole payload or follows the ACK frame that starts it, and that ACK's ``(ranges,
        delay, ecn)``; None for any other payload (a malformed frame included; as
        ``pure.ack_stream_fields``); without the C cipher always None, None (the caller's
        frame decoder decodes it). Raises :class:`DecryptionError`."""
        cipher = self._cipher
        if cipher is not None:
            try:
                opened = cipher.open_stream(packet, pn_offset, largest_pn)
            except OverflowError:
                pass  # (a largest_pn the C decoder does not take: open_packet decides)
            else:
                if opened is None:
                    raise DecryptionError("packet authentication failed")
                return opened
        view = packet if isinstance(packet, memoryview) else memoryview(packet)
        header, payload, pn = self.open_packet(view, pn_offset, largest_pn)
        return header, payload, pn, None, None  # (not decoded: the caller's decoder does)

    def open_packet(
        self, packet: BytesLike, pn_offset: int, largest_pn: int
    ) -> tuple[bytes, bytes, int]:
        """(plain_header, payload, full_pn) of one whole protected packet.

        ``packet`` may be a slice of a datagram (bytes or memoryview); ``largest_pn`` is
        the largest packet number received so far in this space (-1 if none).
        Raises :class:`DecryptionError` (too short to sample, or authentication failed).
        One C call when :attr:`accelerated`; the Python path gives the same results.
        """
        end = pn_offset + 4 + SAMPLE_SIZE
        if pn_offset < 1 or end > len(packet):
            raise DecryptionError("packet too short for header protection sample")
        cipher = self._cipher
        if cipher is not None:
            try:
                opened = cipher.open(packet, pn_offset, largest_pn)
            except OverflowError:
                # A largest_pn the C decoder does not take (beyond 2^62, or not an int):
                # never a received packet's; the Python path below decides.
                self._python_contexts()
            else:
                if opened is None:
                    raise DecryptionError("packet authentication failed")
                return opened
        # remove_header_protection + open_payload, inlined (hot path)
        m0, m4 = _MASK.unpack_from(self._mask(packet[pn_offset + 4 : end]))
        first = packet[0]
        first ^= m0 & (0x0F if first & 0x80 else 0x1F)
        pn_len = (first & 0x03) + 1
        truncated: int = (_U32.unpack_from(packet, pn_offset)[0] ^ m4) >> (32 - 8 * pn_len)
        header = bytes((first,)) + packet[1:pn_offset] + truncated.to_bytes(pn_len, "big")
        pn = decode_packet_number(truncated, 8 * pn_len, largest_pn)
        try:
            payload = self._decrypt(
                (self._iv_int ^ pn).to_bytes(IV_SIZE, "big"), packet[pn_offset + pn_len :], header
            )
        except InvalidTag:
            raise DecryptionError("packet authentication failed") from None
        return header, payload, pn


_retry_aeads: dict[int, tuple[AESGCM, bytes]] = {}


def retry_integrity_tag(pseudo_packet: BytesLike, version: int = _QUIC_V1) -> bytes:
    """Retry Integrity Tag (RFC 9001 5.8, RFC 9369 3.3.3) over the Retry pseudo-packet
    (ODCID length + ODCID + the Retry packet without its tag)."""
    entry = _retry_aeads.get(version)
    if entry is None:
        if version == _QUIC_V1:
            entry = (AESGCM(_RETRY_KEY_V1), _RETRY_NONCE_V1)
        elif version == _QUIC_V2:
            entry = (AESGCM(_RETRY_KEY_V2), _RETRY_NONCE_V2)
        else:
            raise ConfigError(f"unsupported QUIC version {version:#010x}")
        _retry_aeads[version] = entry
    aead, nonce = entry
    return aead.encrypt(nonce, b"", pseudo_packet)
