"""quicish.kdf against independent implementations: the stdlib's hmac and cryptography's HKDF."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import given
from hypothesis import strategies as st

from quicish import kdf

ALGORITHMS = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}
names = st.sampled_from(sorted(ALGORITHMS))


@given(names, st.binary(max_size=300), st.binary(max_size=300))
def test_hmac_matches_stdlib(name: str, key: bytes, msg: bytes) -> None:
    assert kdf.hmac_digest(name, key, msg) == hmac.digest(key, msg, name)


@given(
    names,
    st.binary(max_size=80),
    st.binary(min_size=1, max_size=80),
    st.binary(max_size=60),
    st.integers(1, 400),
)
def test_hkdf_matches_cryptography(
    name: str, salt: bytes, ikm: bytes, info: bytes, length: int
) -> None:
    algorithm = ALGORITHMS[name]
    prk = kdf.hkdf_extract(name, salt, ikm)
    expected = HKDF(algorithm, length, salt or None, info).derive(ikm)
    assert kdf.hkdf_expand(name, prk, info, length) == expected


@given(
    names,
    st.binary(min_size=32, max_size=48),
    st.binary(max_size=20),
    st.binary(max_size=48),
    st.integers(1, 100),
)
def test_expand_label_is_hkdf_expand_of_the_hkdf_label(
    name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> None:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    expected = HKDFExpand(ALGORITHMS[name], length, info).derive(secret)
    assert kdf.expand_label(name, secret, label, context, length) == expected


@given(
    names,
    st.binary(max_size=200),
    st.lists(st.tuples(st.binary(max_size=20), st.integers(0, 48)), max_size=4),
)
def test_expand_labels_is_expand_label_of_each(
    name: str, secret: bytes, labels: list[tuple[bytes, int]]
) -> None:
    labels = [(label, min(length, kdf.digest_size(name))) for label, length in labels]
    expected = [kdf.expand_label(name, secret, label, b"", length) for label, length in labels]
    assert kdf.expand_labels(name, secret, labels) == expected


def test_rfc5869_test_case_1() -> None:
    ikm = bytes([0x0B] * 22)
    salt = bytes(range(13))
    info = bytes(range(0xF0, 0xFA))
    prk = kdf.hkdf_extract("sha256", salt, ikm)
    assert prk.hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    okm = kdf.hkdf_expand("sha256", prk, info, 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unsupported hash"):
        kdf.hmac_digest("md5", b"k", b"m")
    with pytest.raises(ValueError, match="too long"):
        kdf.hkdf_expand("sha256", bytes(32), b"", 255 * 32 + 1)
    with pytest.raises(ValueError, match="out of range"):
        kdf.expand_label("sha256", bytes(32), b"x" * 250, b"", 16)
    with pytest.raises(ValueError, match="out of range"):
        kdf.expand_labels("sha256", bytes(32), [(b"x" * 250, 16)])
    with pytest.raises(ValueError, match="one hash block"):
        kdf.expand_labels("sha256", bytes(32), [(b"quic key", 33)])
    with pytest.raises(ValueError, match="unsupported hash"):
        kdf.expand_labels("md5", bytes(32), [(b"quic key", 16)])
