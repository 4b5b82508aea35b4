"""Packet number encoding and decoding (RFC 9000 Appendix A.2 and A.3).

The one definition of both. :mod:`quicish.wire.packet` re-exports them; the Python
packet-protection path (:mod:`quicish.wire.protection`) decodes with
:func:`decode_packet_number`, and the C packet cipher's own decoder (``qr_pn_decode`` in
``quicish/native/aead.c``, compared with this one by the tests) calls it for the
arguments it does not take.
"""

from __future__ import annotations

__all__ = ["PN_MAX", "decode_packet_number", "encode_packet_number"]

PN_MAX = 1 << 62
"""Packet numbers are below 2^62 (RFC 9000 section 12.3)."""


def encode_packet_number(full_pn: int, largest_acked: int | None) -> tuple[int, int]:
    """Truncate ``full_pn`` to the shortest safe length (RFC 9000 Appendix A.2).

    ``largest_acked`` is the largest acknowledged pn in this space, None when none is.
    Returns ``(truncated, length_in_bytes)``.
    """
    if not 0 <= full_pn < PN_MAX:
        raise ValueError("packet number out of range")
    num_unacked = full_pn + 1 if largest_acked is None else full_pn - largest_acked
    if num_unacked <= 0:
        raise ValueError("packet number not above the largest acknowledged")
    # need 2 * num_unacked <= 2**bits
    length = ((num_unacked - 1).bit_length() + 1 + 7) // 8
    if length > 4:
        raise ValueError("too many unacknowledged packets to encode the packet number")
    return full_pn & ((1 << (8 * length)) - 1), length


def decode_packet_number(truncated: int, pn_bits: int, largest_pn: int | None) -> int:
    """Recover a full packet number from ``truncated`` (RFC 9000 Appendix A.3).

    ``pn_bits`` is the encoded length in bits (8, 16, 24 or 32); ``largest_pn`` is the
    largest pn successfully processed in this space (None or -1: none).
    """
    expected = (-1 if largest_pn is None else largest_pn) + 1
    win = 1 << pn_bits
    hwin = win >> 1
    candidate = (expected & -win) | truncated
    if candidate <= expected - hwin:
        if candidate < PN_MAX - win:
            return candidate + win
    elif candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate
