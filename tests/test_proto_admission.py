"""Admission of new connections (issue 15, item 3), sans-IO: half-open connections are
counted, automatic Retry engages at the threshold, and none is made beyond the cap."""

from __future__ import annotations

import pytest

from quicish import Config
from quicish.errors import ConfigError
from quicish.proto.admission import Admission, Admit


def _fill(admission: Admission, n: int) -> list[object]:
    conns = [object() for _ in range(n)]
    for conn in conns:
        assert admission.decide(validated=False) is Admit.ACCEPT
        admission.opened(conn)
    return conns


def test_auto_retries_from_the_threshold_on_and_stops_below_it() -> None:
    admission = Admission("auto", retry_threshold=3, max_half_open=10)
    conns = _fill(admission, 3)
    assert admission.half_open == 3 and admission.retrying
    assert admission.decide(validated=False) is Admit.RETRY
    assert admission.decide(validated=True) is Admit.ACCEPT  # came back with a Retry token
    admission.settled(conns[0])  # its handshake completed
    admission.settled(conns[0])  # (and later it closed: counted once)
    assert admission.half_open == 2 and not admission.retrying
    assert admission.decide(validated=False) is Admit.ACCEPT
    assert (admission.accepted, admission.retried, admission.dropped) == (5, 1, 0)


def test_cap_holds_for_validated_clients_too() -> None:
    admission = Admission("auto", retry_threshold=100, max_half_open=4)
    _fill(admission, 4)
    assert admission.decide(validated=False) is Admit.RETRY
    assert admission.decide(validated=True) is Admit.DROP


def test_never_drops_beyond_the_cap() -> None:
    admission = Admission("never", retry_threshold=0, max_half_open=2)
    _fill(admission, 2)
    assert not admission.retrying
    assert admission.decide(validated=False) is Admit.DROP
    assert admission.decide(validated=True) is Admit.DROP


def test_always_retries_every_unvalidated_client() -> None:
    admission = Admission("always")
    assert admission.decide(validated=False) is Admit.RETRY
    assert admission.decide(validated=True) is Admit.ACCEPT


def test_twenty_thousand_spoofed_initials_make_at_most_threshold_connections() -> None:
    admission = Admission("auto", retry_threshold=100, max_half_open=1000)
    made = 0
    for _ in range(20_000):
        if admission.decide(validated=False) is Admit.ACCEPT:
            admission.opened(object())
            made += 1
    assert made == 100 and admission.retried == 19_900


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (True, "always"),
        ("always", "always"),
        (False, "never"),
        ("never", "never"),
        ("auto", "auto"),
    ],
)
def test_config_retry_values(value: bool | str, mode: str) -> None:
    assert Config(retry=value).retry_mode() == mode


def test_config_defaults_and_validation() -> None:
    cfg = Config()
    assert (cfg.retry_mode(), cfg.retry_threshold, cfg.max_half_open) == ("auto", 100, 1000)
    with pytest.raises(ConfigError, match="retry"):
        Config(retry="sometimes")
    with pytest.raises(ConfigError, match="retry_threshold"):
        Config(retry_threshold=-1)
    with pytest.raises(ConfigError, match="max_half_open"):
        Config(max_half_open=0)
