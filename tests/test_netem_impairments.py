"""Deterministic tests of the relay's decision logic and configuration (no sockets)."""

from __future__ import annotations

import random
import statistics

import pytest

from quicish.errors import ConfigError
from quicish.netem import Counters, DirectionCounters, LinkConfig, Netem, RelaySettings
from quicish.netem.cli import build_parser, parse_indices, settings_from_args
from quicish.netem.impairments import (
    Burst,
    LinkModel,
    RebindSchedule,
    Serializer,
    corrupt,
    link_on,
    stream,
)

N = 20000


def runs(hits: list[bool]) -> list[int]:
    """Lengths of the maximal runs of True (a run cut off by the end not included)."""
    out: list[int] = []
    length = 0
    for hit in hits:
        if hit:
            length += 1
        elif length:
            out.append(length)
            length = 0
    return out


def feed(model: LinkModel[int], count: int, size: int = 100, gap: float = 0.001) -> list[int]:
    """Send packets 1..count (tag = index) at ``gap`` spacing; tags in send order."""
    sends: list[tuple[float, bytes, int]] = []
    for i in range(1, count + 1):
        now = i * gap
        sends += model.expire(now)
        sends += model.packet(bytes(size), i, now)
    sends += model.expire(1e9)
    sends.sort(key=lambda s: s[0])
    return [tag for _, _, tag in sends]


# -- Burst: the loss / corruption process ------------------------------------------------


@pytest.mark.parametrize(("pct", "burst"), [(2, 1), (10, 1), (30, 1), (2, 3), (30, 3), (60, 1)])
def test_burst_long_run_fraction_is_pct(pct: float, burst: int) -> None:
    process = Burst(pct, burst, random.Random(7))
    hits = [process.hit() for _ in range(N)]
    fraction = sum(hits) / N
    # binomial sd for N draws, inflated by the burst length (events are the unit)
    sd = (pct / 100 * (1 - pct / 100) * burst / N) ** 0.5
    assert abs(fraction - pct / 100) < 4 * sd + 0.002
    assert all(length % burst == 0 for length in runs(hits))


def test_burst_of_three_drops_runs_of_three() -> None:
    process = Burst(30, 3, random.Random(1))
    lengths = runs([process.hit() for _ in range(N)])
    assert set(lengths) <= {3, 6, 9, 12, 15, 18}
    assert lengths.count(3) / len(lengths) > 0.8  # back-to-back events are the exception


def test_burst_zero_and_hundred() -> None:
    rng = random.Random(1)
    assert not any(Burst(0, 3, rng).hit() for _ in range(1000))
    assert all(Burst(100, 3, rng).hit() for _ in range(1000))


# -- on/off, corruption, rebinding schedule ------------------------------------------------


def test_link_on_off_schedule() -> None:
    assert link_on((0.2, 0.2), 0.0)
    assert link_on((0.2, 0.2), 0.199)
    assert not link_on((0.2, 0.2), 0.2)
    assert not link_on((0.2, 0.2), 0.399)
    assert link_on((0.2, 0.2), 0.4)
    assert link_on((5.0, 2.0), 4.9) and not link_on((5.0, 2.0), 5.1) and link_on((5.0, 2.0), 7.1)
    assert link_on((1.0, 0.0), 123.4)


def test_corrupt_changes_exactly_one_byte_after_the_first() -> None:
    rng = random.Random(3)
    data = bytes(range(256)) * 4
    positions = set()
    for _ in range(2000):
        out = corrupt(data, rng)
        diff = [i for i in range(len(data)) if out[i] != data[i]]
        assert len(diff) == 1 and diff[0] >= 1 and len(out) == len(data)
        positions.add(diff[0])
    assert min(positions) == 1 or len(positions) > 600  # spread over the whole packet
    assert corrupt(b"\xc0\x00", rng)[0] == 0xC0
    assert corrupt(b"\x01", rng) == b"\x01"


def test_rebind_schedule() -> None:
    schedule = RebindSchedule(1.0, 5.0, start=10.0)
    assert not schedule.due(10.5)
    assert schedule.due(11.0) and schedule.next_at == 16.0
    assert not schedule.due(15.9)
    assert schedule.due(27.0) and schedule.next_at == 31.0  # missed times collapse into one


# -- Serializer: rate and drop-tail queue --------------------------------------------------


def test_serializer_spaces_packets_at_the_link_rate() -> None:
    link = Serializer(rate_mbit=10.0, limit=1000)
    finish = [link.admit(1250, 0.0) for _ in range(10)]  # 1 ms each at 10 Mbit/s
    assert finish == pytest.approx([0.001 * (i + 1) for i in range(10)])
    assert link.queued(0.0) == 9  # one on the wire
    assert link.admit(1250, 1.0) == pytest.approx(1.001)  # idle link: no wait


def test_serializer_drop_tail_limit() -> None:
    link = Serializer(rate_mbit=8.0, limit=3)  # 1000 bytes = 1 ms
    admitted = [link.admit(1000, 0.0) for _ in range(6)]
    assert admitted[:4] == pytest.approx([0.001, 0.002, 0.003, 0.004])
    assert admitted[4:] == [None, None]  # 1 on the wire + 3 waiting
    assert link.admit(1000, 0.0015) == pytest.approx(0.005)  # one started meanwhile


# -- LinkModel ----------------------------------------------------------------------------


def model(config: LinkConfig, seed: int = 1) -> LinkModel[int]:
    return LinkModel(config, seed=seed, direction="to_server", start=0.0)


def test_model_without_impairments_forwards_everything_in_order_now() -> None:
    m = model(LinkConfig())
    for i in range(1, 101):
        assert m.packet(b"x%d" % i, i, i * 0.01) == [(i * 0.01, b"x%d" % i, i)]
    assert m.counters.received == 100 and m.counters.dropped == 0


def test_model_drop_list_drops_exactly_those_indices() -> None:
    m = model(LinkConfig(drop_list=(2, 3, 4, 5, 6, 7)))
    assert feed(m, 20) == [1, *range(8, 21)]
    assert m.counters.dropped_drop_list == 6 and m.counters.dropped == 6


def test_model_loss_is_seeded_and_independent_of_other_impairments() -> None:
    plain = feed(model(LinkConfig(loss_pct=10), seed=5), 2000)
    again = feed(model(LinkConfig(loss_pct=10), seed=5), 2000)
    with_dup = model(LinkConfig(loss_pct=10, duplicate_pct=20), seed=5)
    survivors = sorted(set(feed(with_dup, 2000)))
    other_seed = feed(model(LinkConfig(loss_pct=10), seed=6), 2000)
    assert plain == again == survivors
    assert plain != other_seed
    assert 140 < 2000 - len(plain) < 260


def test_model_duplicates() -> None:
    m = model(LinkConfig(duplicate_pct=10))
    tags = feed(m, 2000)
    assert len(tags) == 2000 + m.counters.duplicated
    assert 140 < m.counters.duplicated < 260
    assert tags == sorted(tags)  # the copy follows its original


def test_model_reorder_holds_behind_the_next_two() -> None:
    m = model(LinkConfig(reorder_pct=10))
    tags = feed(m, 2000)
    assert sorted(tags) == list(range(1, 2001))
    overtaken_by = [
        sum(t > tag for t in tags[max(0, pos - 10) : pos]) for pos, tag in enumerate(tags)
    ]
    assert set(overtaken_by) == {0, 2}  # a held packet goes out behind exactly 2 later ones
    assert overtaken_by.count(2) == m.counters.reordered
    assert 140 < m.counters.reordered < 260


def test_model_reorder_hold_limit_releases_when_nothing_follows() -> None:
    m = model(LinkConfig(reorder_pct=100, reorder_hold_ms=20))
    assert m.packet(b"a", 1, 0.0) == []
    assert m.next_deadline() == pytest.approx(0.020)
    assert m.expire(0.019) == []
    assert m.expire(0.020) == [(0.020, b"a", 1)]
    assert m.counters.reordered == 0  # nothing overtook it


def test_model_delay_rate_and_queue() -> None:
    m = model(LinkConfig(delay_ms=15, rate_mbit=8, queue=2))  # 1000 bytes = 1 ms
    sends = [m.packet(bytes(1000), i, 0.0) for i in range(5)]
    dues = [s[0][0] for s in sends if s]
    assert dues == pytest.approx([0.016, 0.017, 0.018])
    assert m.counters.dropped_queue == 2


def test_model_jitter_stays_in_range_and_never_reorders() -> None:
    m = model(LinkConfig(delay_ms=30, jitter_ms=10))
    dues = []
    for i in range(2000):
        (due, _, _), *_ = m.packet(b"x", i, i * 0.05)
        dues.append(due - i * 0.05)
    assert min(dues) >= 0.020 - 1e-9 and max(dues) <= 0.040 + 1e-9
    assert statistics.mean(dues) == pytest.approx(0.030, abs=0.001)
    assert statistics.pstdev(dues) == pytest.approx(0.010 / 3**0.5, rel=0.1)
    dense = model(LinkConfig(delay_ms=30, jitter_ms=10))
    out = [dense.packet(b"x", i, i * 0.001)[0][0] for i in range(500)]
    assert out == sorted(out)


def test_model_blackhole_drops_in_off_periods() -> None:
    m: LinkModel[int] = LinkModel(
        LinkConfig(blackhole=(0.2, 0.2)), seed=1, direction="to_client", start=10.0
    )
    kept = [i for i in range(100) if m.packet(b"x", i, 10.005 + i * 0.01)]
    assert kept == [i for i in range(100) if (i // 20) % 2 == 0]
    assert m.counters.dropped_blackhole == 40


def test_model_corruption_rate_and_bursts() -> None:
    m = model(LinkConfig(corrupt_pct=30, burst=3))
    hit = [m.packet(bytes(50), i, 0.0)[0][1] != bytes(50) for i in range(N)]
    assert sum(hit) == m.counters.corrupted
    assert abs(m.counters.corrupted / N - 0.30) < 0.02
    assert all(length % 3 == 0 for length in runs(hit))


# -- configuration, counters, CLI --------------------------------------------------------


def test_link_config_merge_and_validation() -> None:
    both = LinkConfig(delay_ms=15, rate_mbit=10, queue=25)
    merged = both.merged(LinkConfig(delay_ms=0, loss_pct=5))
    assert merged == LinkConfig(delay_ms=0, rate_mbit=10, queue=25, loss_pct=5)
    for bad in (
        LinkConfig(loss_pct=101),
        LinkConfig(delay_ms=-1),
        LinkConfig(rate_mbit=0),
        LinkConfig(burst=0),
        LinkConfig(drop_list=(0,)),
        LinkConfig(blackhole=(0.0, 1.0)),
    ):
        with pytest.raises(ConfigError):
            bad.validate()


def test_only_loopback_addresses() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        Netem(("8.8.8.8", 53))
    with pytest.raises(ConfigError, match="loopback"):
        Netem(("127.0.0.1", 4433), listen=("0.0.0.0", 0))
    with pytest.raises(ConfigError):
        Netem(("example.com", 443))
    with pytest.raises(ConfigError, match="IPv4"):
        Netem(("::1", 4433), rebind_port=(1, 5), rebind_addr=True)
    assert Netem(("localhost", 4433)).settings.upstream == ("127.0.0.1", 4433)


def test_settings_json_round_trip() -> None:
    settings = RelaySettings(
        upstream=("127.0.0.1", 4433),
        both=LinkConfig(delay_ms=15, rate_mbit=10, queue=25),
        to_client=LinkConfig(drop_list=(2, 3), blackhole=(5.0, 2.0)),
        rebind_port=(1.0, 5.0),
        rebind_addr=True,
        seed=9,
    )
    assert RelaySettings.from_json(settings.to_json()) == settings


def test_counters_dict_round_trip() -> None:
    counters = Counters(
        to_server=DirectionCounters(received=10, forwarded=8, dropped_loss=1, dropped_queue=1),
        to_client=DirectionCounters(corrupted=3, reordered=2, dropped_drop_list=6),
        clients=2,
        rebinds=1,
        seed=4,
    )
    data = counters.to_dict()
    assert data["to_server"]["dropped"] == {
        "total": 2,
        "loss": 1,
        "queue": 1,
        "blackhole": 0,
        "drop_list": 0,
        "mtu": 0,
    }
    assert Counters.from_dict(data) == counters


def test_cli_options_per_direction() -> None:
    args = build_parser().parse_args(
        [
            "--listen", "127.0.0.1:5000", "--upstream", "[::1]:4433",
            "--delay", "15", "--rate", "10", "--queue", "25",
            "--to-server-loss", "5", "--burst", "3",
            "--to-client-drop-list", "2-7", "--blackhole", "5,2",
            "--rebind-port", "1,5", "--seed", "7",
        ]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert settings.listen == ("127.0.0.1", 5000) and settings.upstream == ("::1", 4433)
    server, client = settings.link("to_server"), settings.link("to_client")
    assert server.delay_ms == client.delay_ms == 15 and server.queue == 25
    assert server.loss_pct == 5 and client.loss_pct is None and client.burst == 3
    assert client.drop_list == (2, 3, 4, 5, 6, 7) and server.drop_list is None
    assert server.blackhole == client.blackhole == (5.0, 2.0)
    assert settings.rebind_port == (1.0, 5.0) and settings.seed == 7
    assert parse_indices("1,3, 5-6") == (1, 3, 5, 6)


def test_streams_are_independent_per_direction_and_decision() -> None:
    draws = {(d, w): stream(1, d, w).random() for d in ("a", "b") for w in ("loss", "corrupt")}
    assert len(set(draws.values())) == 4
    assert stream(1, "a", "loss").random() == draws["a", "loss"]
