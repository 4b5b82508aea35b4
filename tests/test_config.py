"""Config validation: bad application input gets a clear typed exception."""

from pathlib import Path
from typing import Any

import pytest

from quicish import Config, ConfigError


def test_defaults() -> None:
    cfg = Config()
    assert cfg.alpn == ["hq-interop"]
    assert cfg.cipher_suite_ids() == [0x1301, 0x1302, 0x1303]
    assert cfg.congestion_control == "cubic"


def test_cipher_suite_names() -> None:
    assert Config(cipher_suites=["chacha20"]).cipher_suite_ids() == [0x1303]
    assert Config(cipher_suites=["aes256", 0x1301]).cipher_suite_ids() == [0x1302, 0x1301]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpn": []}, "alpn"),
        ({"congestion_control": "vegas"}, "congestion_control"),
        ({"max_datagram_size": 1000}, "1200"),
        ({"cipher_suites": ["rot13"]}, "rot13"),
        ({"cipher_suites": [0x1304]}, "0x1304"),
        ({"max_data": -1}, "max_data"),
    ],
)
def test_invalid_config(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**kwargs)
    assert issubclass(ConfigError, ValueError)


def test_qlog_dir_and_tracer_are_checked() -> None:
    """qlog_dir takes a path and tracer a callable; anything else fails clearly."""
    assert Config(qlog_dir="/tmp/qlog").qlog_dir == "/tmp/qlog"
    assert Config().qlog_dir is None and Config().tracer is None
    with pytest.raises(ConfigError, match="qlog_dir"):
        Config(qlog_dir=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tracer"):
        Config(tracer="print")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_unacked_cid_retirements": 0}, "max_unacked_cid_retirements"),
        ({"datagram_receive_buffer": -1}, "datagram_receive_buffer"),
    ],
)
def test_invalid_hostile_peer_limits(kwargs: dict[str, Any], message: str) -> None:
    """The bounds on what a peer can make us hold (issue 15) are checked like the rest."""
    with pytest.raises(ConfigError, match=message):
        Config(**kwargs)
    cfg = Config()
    assert (cfg.max_unacked_cid_retirements, cfg.datagram_receive_buffer) == (32, 1 << 20)


# ---- every field checked when the Config is made, every field documented -----------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_stream_data", 0),  # a transfer hung silently
        ("max_data", 0),
        ("max_data", 2**63),  # ValueError at connect time before
        ("active_connection_id_limit", 1),  # ValueError at connect time before (RFC 9000 18.2)
        ("max_datagram_size", 70000),
        ("max_streams_bidi", -1),
        ("idle_timeout", -1.0),
        ("idle_timeout", float("nan")),
        ("keep_alive", 0.0),
        ("send_buffer_size", 0),
        ("session_ticket_lifetime", 8 * 86400),
        ("groups", ["x448"]),
        ("pin", "not-a-fingerprint"),
        ("server_name", ""),
        ("verify", 3.5),
        ("disable_active_migration", "yes"),
        ("max_datagram_frame_size", 0),
        ("max_data", True),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**{field: value})  # type: ignore[arg-type]
    assert field in str(info.value)


def test_bad_keylog_path_is_a_config_error_not_a_tls_failure(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keylog_file"):
        Config(keylog_file=tmp_path / "no-such-dir" / "keys.log")
    with pytest.raises(ConfigError, match="keylog_file"):
        Config(keylog_file=tmp_path)  # a directory
    Config(keylog_file=tmp_path / "keys.log")  # a new file in a writable directory: fine


def test_credentials_go_together() -> None:
    with pytest.raises(ConfigError, match="certificate_chain and private_key"):
        Config(certificate_chain=b"-----BEGIN CERTIFICATE-----")


def test_every_field_is_documented() -> None:
    """Each Config field has a ``#:`` doc comment right above it (the README's table is
    checked against the fields in test_docs)."""
    import dataclasses
    import inspect

    from quicish import config as config_module

    lines = inspect.getsource(config_module.Config).splitlines()
    for f in dataclasses.fields(Config):
        (index,) = [i for i, line in enumerate(lines) if line.strip().startswith(f"{f.name}:")]
        assert lines[index - 1].strip().startswith("#:"), f"{f.name} has no doc comment"
