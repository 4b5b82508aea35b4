"""The QUIC-LB encrypted CID algorithms (draft-ietf-quic-load-balancers, "Server Actions"
and "Load Balancer Actions") over AES-128-ECB from ``cryptography``: one AES block when
server ID and nonce are exactly 16 bytes, else a four-round Feistel network whose round
function is AES of the expanded half block. Both map the bytes after the first octet."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class LbCipher:
    """The encrypted algorithm of one key, for plaintexts of ``length`` bytes (5-19)."""

    __slots__ = ("_decrypt", "_encrypt", "_half", "_length", "_odd", "_tail")

    def __init__(self, key: bytes, length: int) -> None:
        aes = Cipher(algorithms.AES(key), modes.ECB())
        # ECB keeps no state between blocks: one context serves every call.
        self._encrypt = aes.encryptor().update
        self._decrypt = aes.decryptor().update
        self._length = length
        self._half = (length + 1) // 2
        self._odd = length & 1
        # expand(length, pass, half): the half, zeros, then the length and pass octets.
        self._tail = [bytes(14 - self._half) + bytes((length, p)) for p in range(5)]

    def _round(self, half: bytes, pass_: int) -> int:
        """AES of expand(length, pass, half), truncated to a half, as an integer."""
        out = self._encrypt(half + self._tail[pass_])
        return int.from_bytes(out[: self._half], "big")

    def encrypt(self, plaintext: bytes) -> bytes:
        if self._length == 16:
            return self._encrypt(plaintext)
        half, n = self._half, self._half * 8
        left = int.from_bytes(plaintext[:half], "big")
        right = int.from_bytes(plaintext[self._length - half :], "big")
        # An odd length splits the middle octet: its high nibble goes left, its low right.
        keep_l = ((1 << n) - 1) ^ (0xF if self._odd else 0)
        keep_r = ((1 << n) - 1) >> (4 if self._odd else 0)
        left &= keep_l
        right &= keep_r
        right = (right ^ self._round(left.to_bytes(half, "big"), 1)) & keep_r
        left = (left ^ self._round(right.to_bytes(half, "big"), 2)) & keep_l
        right = (right ^ self._round(left.to_bytes(half, "big"), 3)) & keep_r
        left = (left ^ self._round(right.to_bytes(half, "big"), 4)) & keep_l
        return self._join(left, right)

    def decrypt(self, ciphertext: bytes, server_id_length: int | None = None) -> bytes:
        """The plaintext; with ``server_id_length``, only as much as holds the server ID
        (three rounds when it lies in the left half, as a load balancer needs)."""
        if self._length == 16:
            return self._decrypt(ciphertext)
        half, n = self._half, self._half * 8
        keep_l = ((1 << n) - 1) ^ (0xF if self._odd else 0)
        keep_r = ((1 << n) - 1) >> (4 if self._odd else 0)
        left = int.from_bytes(ciphertext[:half], "big") & keep_l
        right = int.from_bytes(ciphertext[self._length - half :], "big") & keep_r
        left = (left ^ self._round(right.to_bytes(half, "big"), 4)) & keep_l
        right = (right ^ self._round(left.to_bytes(half, "big"), 3)) & keep_r
        left = (left ^ self._round(right.to_bytes(half, "big"), 2)) & keep_l
        if server_id_length is not None and server_id_length <= self._length // 2:
            return left.to_bytes(half, "big")[:server_id_length]
        right = (right ^ self._round(left.to_bytes(half, "big"), 1)) & keep_r
        return self._join(left, right)

    def _join(self, left: int, right: int) -> bytes:
        """The two halves as ``length`` bytes (an odd length shares the middle octet)."""
        if self._odd:
            return ((left << (self._half * 8 - 8)) | right).to_bytes(self._length, "big")
        return left.to_bytes(self._half, "big") + right.to_bytes(self._half, "big")
