"""Config validation: bad application input gets a clear typed exception."""

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
        ({"congestion_control": "bbr"}, "congestion_control"),
        ({"max_datagram_size": 1000}, "1200"),
        ({"cipher_suites": ["rot13"]}, "rot13"),
        ({"cipher_suites": [0x1304]}, "0x1304"),
        ({"max_data": -1}, "max_data"),
    ],
)
def test_invalid_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**kwargs)
    assert issubclass(ConfigError, ValueError)


def test_qlog_dir_is_refused_until_qlog_exists() -> None:
    """qlog output is not built: asking for it fails clearly instead of being ignored."""
    with pytest.raises(ConfigError, match="qlog"):
        Config(qlog_dir="/tmp/qlog")
    assert Config().qlog_dir is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_unacked_cid_retirements": 0}, "max_unacked_cid_retirements"),
        ({"datagram_receive_buffer": -1}, "datagram_receive_buffer"),
    ],
)
def test_invalid_hostile_peer_limits(kwargs: dict, message: str) -> None:
    """The bounds on what a peer can make us hold (issue 15) are checked like the rest."""
    with pytest.raises(ConfigError, match=message):
        Config(**kwargs)
    cfg = Config()
    assert (cfg.max_unacked_cid_retirements, cfg.datagram_receive_buffer) == (32, 1 << 20)
