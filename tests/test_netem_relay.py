"""The relay with real UDP on loopback: each impairment at its configured rate.

These measure real time on purpose (delay, rate, blackhole periods, rebinding); bounds
are generous but fail if the impairment is missing or off by a meaningful amount.
Packets carry a sequence number and their send time; the test waits on sockets only.
"""

from __future__ import annotations

import json
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from quicish.netem import LinkConfig, Netem
from quicish.netem.impairments import LinkModel

STAMP = struct.Struct("!Id")  # sequence number, send time (time.monotonic())
SEED = 20240601


@dataclass
class Arrival:
    at: float
    data: bytes
    source: tuple[str, int]

    @property
    def seq(self) -> int:
        seq: int = STAMP.unpack_from(self.data)[0]
        return seq

    @property
    def sent_at(self) -> float:
        sent: float = STAMP.unpack_from(self.data)[1]
        return sent


@dataclass
class Run:
    sent: list[float] = field(default_factory=list)  # send time of each seq
    arrivals: dict[socket.socket, list[Arrival]] = field(default_factory=dict)


def udp(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


@pytest.fixture
def server() -> Iterator[socket.socket]:
    sock = udp()
    yield sock
    sock.close()


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = udp()
    yield sock
    sock.close()


def pump(
    sender: socket.socket,
    dest: tuple[str, int],
    count: int,
    interval: float,
    sinks: list[socket.socket],
    *,
    size: int = 64,
    quiet: float = 0.15,
    echo: socket.socket | None = None,
) -> Run:
    """Send ``count`` stamped packets every ``interval`` s; collect arrivals until quiet.

    ``echo``: a sink that sends every packet it receives back to its source.
    """
    run = Run(arrivals={sock: [] for sock in sinks})
    pad = bytes(max(0, size - STAMP.size))
    start = time.monotonic()
    last = start
    while True:
        now = time.monotonic()
        while len(run.sent) < count and start + len(run.sent) * interval <= now:
            run.sent.append(now)
            sender.sendto(STAMP.pack(len(run.sent) - 1, now) + pad, dest)
            last = now
        if len(run.sent) < count:
            timeout = start + len(run.sent) * interval - now
        else:
            timeout = last + quiet - now
            if timeout <= 0:
                return run
        readable, _, _ = select.select(sinks, [], [], max(timeout, 0.0))
        for sock in readable:
            while True:
                try:
                    data, source = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                last = time.monotonic()
                run.arrivals[sock].append(Arrival(last, data, source[:2]))
                if sock is echo:
                    sock.sendto(data, source)


def seqs(arrivals: list[Arrival]) -> list[int]:
    return [a.seq for a in arrivals]


def predicted_drops(config: LinkConfig, count: int, direction: str = "to_server") -> set[int]:
    """0-based seqs the pure model drops for this seed (decisions don't depend on time)."""
    model: LinkModel[int] = LinkModel(config, seed=SEED, direction=direction, start=0.0)
    return {i for i in range(count) if not model.packet(b"x" * 64, i, 0.0)}


def drop_runs(missing: set[int]) -> list[int]:
    lengths: list[int] = []
    for seq in sorted(missing):
        if lengths and seq - 1 in missing:
            lengths[-1] += 1
        else:
            lengths.append(1)
    return lengths


def within(value: float, expected: float, sds: float, sd: float) -> bool:
    return abs(value - expected) <= sds * sd


# -- loss ------------------------------------------------------------------------------


def test_loss_rate_and_exact_seeded_picks(server: socket.socket, client: socket.socket) -> None:
    config = LinkConfig(loss_pct=10)
    with Netem(server.getsockname(), to_server=config, seed=SEED) as relay:
        run = pump(client, relay.address, 2000, 0.0002, [server])
    counts = relay.final_counters
    assert counts is not None
    up = counts.to_server
    assert up.received == 2000, "the kernel dropped packets before the relay"
    missing = set(range(2000)) - set(seqs(run.arrivals[server]))
    assert len(missing) == up.dropped_loss == up.dropped
    assert up.forwarded == 2000 - up.dropped == len(run.arrivals[server])
    assert within(up.dropped_loss, 200, 4, (2000 * 0.1 * 0.9) ** 0.5)  # 146..254
    assert missing == predicted_drops(config, 2000)
    assert counts.to_client.received == 0 and counts.clients == 1


def test_loss_bursts_of_three(server: socket.socket, client: socket.socket) -> None:
    config = LinkConfig(loss_pct=10, burst=3)
    with Netem(server.getsockname(), both=config, seed=SEED) as relay:
        run = pump(client, relay.address, 2000, 0.0002, [server])
    assert relay.final_counters is not None
    up = relay.final_counters.to_server
    assert up.received == 2000
    missing = set(range(2000)) - set(seqs(run.arrivals[server]))
    assert len(missing) == up.dropped_loss
    lengths = drop_runs(missing)
    if 1999 in missing:
        lengths.pop()  # a run cut off by the end
    assert all(n % 3 == 0 for n in lengths)
    assert lengths.count(3) >= 0.8 * len(lengths)
    # ~71 events of 3: sd of the dropped count is about 3 * sqrt(71)
    assert within(up.dropped_loss, 200, 4, 3 * 71**0.5)
    assert missing == predicted_drops(config, 2000)


# -- corruption, duplication, reordering ------------------------------------------------


def test_corruption_rate_and_shape(server: socket.socket, client: socket.socket) -> None:
    with Netem(server.getsockname(), both=LinkConfig(corrupt_pct=10), seed=SEED) as relay:
        run = pump(client, relay.address, 2000, 0.0002, [server], size=200)
    assert relay.final_counters is not None
    up = relay.final_counters.to_server
    got = run.arrivals[server]
    assert up.received == up.forwarded == len(got) == 2000
    corrupted = 0
    for seq, arrival in enumerate(got):  # no reordering: arrival i is packet i
        expected = STAMP.pack(seq, run.sent[seq]) + bytes(200 - STAMP.size)
        diff = [i for i in range(200) if arrival.data[i] != expected[i]]
        if diff:
            corrupted += 1
            assert len(diff) == 1 and diff[0] >= 1
    assert corrupted == up.corrupted
    assert within(corrupted, 200, 4, (2000 * 0.1 * 0.9) ** 0.5)


def test_duplication_rate(server: socket.socket, client: socket.socket) -> None:
    with Netem(server.getsockname(), to_server=LinkConfig(duplicate_pct=5), seed=SEED) as relay:
        run = pump(client, relay.address, 2000, 0.0002, [server])
    assert relay.final_counters is not None
    up = relay.final_counters.to_server
    got = seqs(run.arrivals[server])
    assert up.received == 2000 and sorted(set(got)) == list(range(2000))
    assert len(got) - 2000 == up.duplicated == up.forwarded - 2000
    assert within(up.duplicated, 100, 4, (2000 * 0.05 * 0.95) ** 0.5)


def test_reorder_rate(server: socket.socket, client: socket.socket) -> None:
    config = LinkConfig(reorder_pct=5)
    with Netem(server.getsockname(), to_server=config, seed=SEED) as relay:
        run = pump(client, relay.address, 2000, 0.0002, [server])
    assert relay.final_counters is not None
    up = relay.final_counters.to_server
    got = seqs(run.arrivals[server])
    assert sorted(got) == list(range(2000))
    overtaken = [sum(s > seq for s in got[max(0, i - 10) : i]) for i, seq in enumerate(got)]
    late = [seq for seq, n in zip(got, overtaken, strict=True) if n]
    assert set(overtaken) == {0, 2}  # held behind exactly the next two
    assert len(late) == up.reordered
    assert within(up.reordered, 100, 4, (2000 * 0.05 * 0.95) ** 0.5)


def test_drop_list_per_direction(server: socket.socket, client: socket.socket) -> None:
    with Netem(
        server.getsockname(),
        to_server=LinkConfig(drop_list=(2, 3, 4, 5, 6, 7)),
        to_client=LinkConfig(drop_list=(1, 3)),
    ) as relay:
        run = pump(client, relay.address, 20, 0.002, [server, client], echo=server)
    assert seqs(run.arrivals[server]) == [0, *range(7, 20)]  # indices 2..7 = seqs 1..6
    # the server's 1st and 3rd packets are the echoes of seqs 0 and 8
    assert seqs(run.arrivals[client]) == [7, *range(9, 20)]
    assert relay.final_counters is not None
    assert relay.final_counters.to_server.dropped_drop_list == 6
    assert relay.final_counters.to_client.dropped_drop_list == 2


# -- blackhole ---------------------------------------------------------------------------


def test_blackhole_drops_during_off_periods(server: socket.socket, client: socket.socket) -> None:
    with Netem(server.getsockname(), both=LinkConfig(blackhole=(0.2, 0.2))) as relay:
        run = pump(client, relay.address, 250, 0.004, [server])
    got = set(seqs(run.arrivals[server]))
    checked = off = 0
    for seq, sent in enumerate(run.sent):
        phase = (sent - relay.started_at) % 0.4
        if 0.01 < phase < 0.19:
            assert seq in got, f"packet at phase {phase:.3f} (link on) was dropped"
            checked += 1
        elif 0.21 < phase < 0.39:
            assert seq not in got, f"packet at phase {phase:.3f} (link off) went through"
            checked += 1
            off += 1
    assert checked > 200
    assert relay.final_counters is not None
    up = relay.final_counters.to_server
    assert up.dropped_blackhole == 250 - len(got)
    # every packet sent while the link was off, and at most the ones near an edge besides
    # (judged by when they were sent: a stalled sender shifts how many fall in each half)
    assert off <= up.dropped_blackhole <= off + (250 - checked)
    assert 80 <= up.dropped_blackhole <= 170  # about half of the time off


# -- rebinding ---------------------------------------------------------------------------


def rebind_run(
    server: socket.socket, client: socket.socket, rebind_addr: bool
) -> tuple[Netem, Run]:
    with Netem(server.getsockname(), rebind_port=(0.25, 0.25), rebind_addr=rebind_addr) as relay:
        run = pump(client, relay.address, 90, 0.01, [server, client], echo=server)
    return relay, run


def source_changes(relay: Netem, arrivals: list[Arrival]) -> list[tuple[float, tuple[str, int]]]:
    """(time after the relay's start, new source) at each change of source."""
    changes = [(arrivals[0].sent_at - relay.started_at, arrivals[0].source)]
    for a in arrivals[1:]:
        if a.source != changes[-1][1]:
            changes.append((a.sent_at - relay.started_at, a.source))
    return changes


def test_rebind_port(server: socket.socket, client: socket.socket) -> None:
    relay, run = rebind_run(server, client, rebind_addr=False)
    changes = source_changes(relay, run.arrivals[server])
    sources = [source for _, source in changes]
    assert len(set(sources)) == len(sources) >= 3  # a new port each time
    assert {host for host, _ in sources} == {"127.0.0.1"}
    assert 0.24 <= changes[1][0] <= 0.32  # first rebinding after 0.25 s
    assert 0.20 <= changes[2][0] - changes[1][0] <= 0.30  # then every 0.25 s
    assert relay.final_counters is not None
    # one more rebinding may come after the last packet, before the relay stops
    assert len(sources) - 1 <= relay.final_counters.rebinds <= len(sources)
    # The server's answers to each new port come back; at most the one or two in flight to
    # the old port at each rebinding are lost (two only on a loaded host: 87 of 90 was seen
    # once with 3 rebindings), as for a new address below.
    assert len(run.arrivals[client]) >= 90 - 2 * relay.final_counters.rebinds


def test_rebind_address(server: socket.socket, client: socket.socket) -> None:
    relay, run = rebind_run(server, client, rebind_addr=True)
    hosts = [source[0] for _, source in source_changes(relay, run.arrivals[server])]
    assert hosts[:3] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert relay.final_counters is not None
    # The server's answers to each new address come back; at most the one or two in flight
    # to the old address at each rebinding are lost (more than one only on a loaded host).
    assert len(run.arrivals[client]) >= 90 - 2 * relay.final_counters.rebinds


# -- delay, jitter, rate, queue ----------------------------------------------------------


def one_way_delays(arrivals: list[Arrival]) -> list[float]:
    return [a.at - a.sent_at for a in arrivals]


def forwarding_time(server: socket.socket, client: socket.socket) -> float:
    """The median one-way time through a relay that adds nothing: what this machine's load
    (scheduling of the relay and of this reader) adds to every measured delay just now."""
    with Netem(server.getsockname()) as relay:
        run = pump(client, relay.address, 40, 0.005, [server], quiet=0.1)
    return statistics.median(one_way_delays(run.arrivals[server]))


def test_delay_each_direction(server: socket.socket, client: socket.socket) -> None:
    links = {"to_server": LinkConfig(delay_ms=50), "to_client": LinkConfig(delay_ms=15)}
    with Netem(
        server.getsockname(), to_server=links["to_server"], to_client=links["to_client"]
    ) as relay:
        up = pump(client, relay.address, 60, 0.005, [server], quiet=0.1)
        client.sendto(b"hello", relay.address)  # map the client, then time the way back
        assert select.select([server], [], [], 1.0)[0]
        mapped: tuple[str, int] = server.recvfrom(100)[1]
        down = pump(server, mapped, 60, 0.005, [client], quiet=0.1)
    measured = {
        "to_server": one_way_delays(up.arrivals[server]),
        "to_client": one_way_delays(down.arrivals[client]),
    }
    base = forwarding_time(server, client)
    for direction, delays in measured.items():
        setting = (links[direction].delay_ms or 0.0) / 1000
        assert len(delays) == 60
        assert min(delays) >= setting - 0.0005  # never early
        # late by at most 10% plus what the machine adds to an undelayed relay right now
        assert setting <= statistics.median(delays) <= setting * 1.1 + base, direction
        # the mean of the fastest 90%: systematically late would show, one scheduling stall of
        # this process (tens of ms on a loaded machine) would not
        fastest = sorted(delays)[: len(delays) * 9 // 10]
        assert setting <= statistics.mean(fastest) <= setting * 1.1 + base, direction


def test_jitter(server: socket.socket, client: socket.socket) -> None:
    with Netem(server.getsockname(), both=LinkConfig(delay_ms=30, jitter_ms=10), seed=SEED) as r:
        run = pump(client, r.address, 40, 0.025, [server], quiet=0.1)
    delays = one_way_delays(run.arrivals[server])
    base = forwarding_time(server, client)
    assert len(delays) == 40
    assert min(delays) >= 0.0195  # never early
    assert sorted(delays)[int(len(delays) * 0.9)] <= 0.045 + base  # late only by scheduling
    assert 0.027 <= statistics.mean(delays) <= 0.033 + base
    assert statistics.pstdev(delays) > 0.003  # uniform +-10 ms: sd 5.8 ms


def test_rate_limits_a_saturating_burst(server: socket.socket, client: socket.socket) -> None:
    rate = 10.0  # Mbit/s; 1200-byte packets take 0.96 ms each
    with Netem(server.getsockname(), both=LinkConfig(rate_mbit=rate)) as relay:
        run = pump(client, relay.address, 300, 0.00048, [server], size=1200)  # offered: 2x
    got = run.arrivals[server]
    assert len(got) == 300
    span = got[-1].at - got[0].at
    measured = (len(got) - 1) * 1200 * 8 / span / 1e6
    assert measured == pytest.approx(rate, rel=0.1)
    assert relay.final_counters is not None
    assert relay.final_counters.to_server.dropped_queue == 0


def test_queue_is_drop_tail(server: socket.socket, client: socket.socket) -> None:
    config = LinkConfig(rate_mbit=8.0, queue=10)  # 1000-byte packets take 1 ms each
    with Netem(server.getsockname(), both=config) as relay:
        run = pump(client, relay.address, 200, 0.00025, [server], size=1000)  # offered: 4x
    assert relay.final_counters is not None
    up = relay.final_counters.to_server
    got = run.arrivals[server]
    assert up.received == 200 and len(got) == up.forwarded == 200 - up.dropped_queue
    # the link drains 1 packet per ms while the sender runs; the rest is dropped
    expected = 11 + (run.sent[-1] - run.sent[0]) / 0.001
    assert len(got) == pytest.approx(expected, rel=0.15)
    # The queue is full for most of the run: 10 waiting + 1 on the wire, so the median packet
    # waits 11 ms (one more or one fewer in the queue would move it by 1 ms). The median is
    # not moved by a scheduling stall of a loaded machine; the tail is, so its bound is loose.
    delays = sorted(one_way_delays(got))
    assert 0.0100 <= statistics.median(delays) <= 0.0122
    assert delays[int(len(delays) * 0.95)] < 0.030


# -- many clients, IPv6, command line ------------------------------------------------------


def test_each_client_gets_its_own_upstream_socket(server: socket.socket) -> None:
    clients = [udp() for _ in range(3)]
    try:
        with Netem(server.getsockname(), both=LinkConfig(delay_ms=5)) as relay:
            for i, sock in enumerate(clients):
                sock.sendto(b"client %d" % i, relay.address)
            sources: dict[bytes, tuple[str, int]] = {}
            while len(sources) < 3 and select.select([server], [], [], 1.0)[0]:
                data, source = server.recvfrom(100)
                sources[data] = source
                server.sendto(b"reply to " + data, source)
            replies = []
            for sock in clients:
                assert select.select([sock], [], [], 1.0)[0]
                replies.append(sock.recvfrom(100)[0])
            live = relay.counters()
        assert len(set(sources.values())) == 3
        assert replies == [b"reply to client %d" % i for i in range(3)]
        assert live.clients == 3 and live.to_client.forwarded == 3
        assert not relay.running
    finally:
        for sock in clients:
            sock.close()


def test_ipv6_loopback() -> None:
    server, client = udp("::1"), udp("::1")
    try:
        with Netem(server.getsockname()[:2], listen=("::1", 0)) as relay:
            run = pump(client, relay.address, 10, 0.001, [server, client], echo=server)
        assert relay.address[0] == "::1"
        assert seqs(run.arrivals[client]) == list(range(10))
    finally:
        server.close()
        client.close()


def read_line(stream: Callable[[], bytes], fd: int, timeout: float) -> bytes:
    assert select.select([fd], [], [], timeout)[0], "no output from the relay"
    return stream()


def test_command_line(server: socket.socket, client: socket.socket) -> None:
    port = server.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "quicish.netem", "--upstream", f"127.0.0.1:{port}",
         "--to-server-drop-list", "1,2", "--to-client-loss", "100", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None and proc.stdout is not None
    try:
        banner = read_line(proc.stderr.readline, proc.stderr.fileno(), 10.0).decode()
        listen = banner.split()[1].rsplit(":", 1)
        run = pump(client, (listen[0], int(listen[1])), 5, 0.001, [server, client], echo=server)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    counts = json.loads(out)
    assert seqs(run.arrivals[server]) == [2, 3, 4] and run.arrivals[client] == []
    assert counts["to_server"]["dropped"] == {
        "total": 2, "loss": 0, "queue": 0, "blackhole": 0, "drop_list": 2, "mtu": 0
    }  # fmt: skip
    assert counts["to_client"]["dropped"]["loss"] == 3 and counts["seed"] == 3


def test_command_line_duration(server: socket.socket) -> None:
    port = server.getsockname()[1]
    out = subprocess.run(
        [sys.executable, "-m", "quicish.netem", "--upstream", f"127.0.0.1:{port}",
         "--duration", "0.2"],
        capture_output=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    assert json.loads(out)["to_server"]["received"] == 0
