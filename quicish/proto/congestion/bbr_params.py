"""BBR's parameters (draft-ietf-ccwg-bbr's gains, thresholds and filter lengths, and
quicish's for reading loss: see bbr.py's ``Bbr``), its states and its probe's ACK phases."""

from __future__ import annotations

import functools
import random

STARTUP_PACING_GAIN = 2.77  # 4 * ln(2)
STARTUP_CWND_GAIN = 2.0
DRAIN_PACING_GAIN = 0.35
DEFAULT_CWND_GAIN = 2.0
PROBE_UP_CWND_GAIN = 2.25
PROBE_UP_PACING_GAIN = 1.25
PROBE_DOWN_PACING_GAIN = 0.9
PACING_MARGIN = 0.01  # pace 1% below the estimate
LOSS_THRESH = 0.02  # a round of probing with more loss than this is "too high"
BETA = 0.7  # multiplicative cut of the short-term bounds per round with loss
HEADROOM = 0.15  # CRUISE leaves this share of inflight_hi for other flows
FULL_BW_THRESH = 1.25
FULL_BW_COUNT = 3
STARTUP_FULL_LOSS_COUNT = 6  # lost packets in a round that may end Startup
MIN_RTT_FILTER_LEN = 10.0  # seconds
PROBE_RTT_INTERVAL = 5.0  # seconds
PROBE_RTT_DURATION = 0.2  # seconds
PROBE_RTT_CWND_GAIN = 0.5
EXTRA_ACKED_FILTER_LEN = 10  # rounds
MAX_BW_FILTER_LEN = 2  # ProbeBW cycles
PROBE_WAIT_BASE = 2.0  # seconds between bandwidth probes: 2 s plus up to 1 s at random
MAX_RENO_ROUNDS = 63
LOSS_NOISE_PACKETS = 2  # see Bbr (loss_tolerant; not in the draft)
PATH_LOSS_DECAY = 7 / 8  # the path's own loss rate: bytes lost / sent, decayed per round
MAX_LOSS_THRESH = 0.15  # the loss threshold follows the path's rate up to this
QUEUED_BETA = 0.9  # the cut of the short-term bounds per round with a queued loss
QUEUED_RTT_FACTOR = 1.5  # a loss seen while the RTT is above 1.5x min_rtt ...
QUEUED_RTT_FLOOR = 0.004  # ... and 4 ms above it is a full queue's (loss_tolerant)
COMPETING_RTT_FACTOR = 1.2  # the lowest RTT of a calm round this far above min_rtt ...
COMPETING_ROUNDS = 2  # ... this many calm rounds in a row: another flow keeps a queue
COMPETING_BETA = 0.6  # a loss with another flow's queue cuts inflight_hi (Reno: 0.5)

STARTUP, DRAIN, PROBE_DOWN, PROBE_CRUISE, PROBE_REFILL, PROBE_UP, PROBE_RTT = range(7)
STATE_NAMES = ("Startup", "Drain", "ProbeBW_DOWN", "ProbeBW_CRUISE", "ProbeBW_REFILL",
               "ProbeBW_UP", "ProbeRTT")  # fmt: skip
PROBE_BW_STATES = (PROBE_DOWN, PROBE_CRUISE, PROBE_REFILL, PROBE_UP)
# states whose own queue is small (ProbeBW_UP: 1.25x the estimate for a round or so): a
# queue of 1.5x min_rtt then is another flow's
CALM_STATES = (PROBE_CRUISE, PROBE_REFILL, PROBE_UP)
# rounds whose losses (without a queue built) are the path's own
QUIET_STATES = (STARTUP, DRAIN, PROBE_DOWN, PROBE_CRUISE)

# ack_phase: where the ACKs of a bandwidth probe are
ACKS_INIT, ACKS_REFILLING, ACKS_PROBE_STARTING, ACKS_PROBE_FEEDBACK, ACKS_PROBE_STOPPING = range(5)

# Bbr's attributes (its __slots__: one controller per connection, no instance dict)
SLOTS = (
    "_best_median", "_calm_since", "_cluster_index", "_competing_cycle", "_extra_acked_filter",
    "_floor_rounds", "_floor_skip",
    "_hi_cut_index", "_last_round_high", "_last_round_min_rtt", "_latest_rtt", "_loss_noise",
    "_loss_round_delivered", "_max_bw_filter", "_medians_only", "_next_round_delivered",
    "_now", "_path_lost", "_path_sent", "_probe_end_delivered", "_queued_cycle", "_random",
    "_round_clustered", "_round_cwnd_limited", "_round_lost", "_round_lost_all",
    "_round_min_rtt", "_round_new_episode", "_round_queued", "_round_rates",
    "_round_start_delivered", "_send_lost", "_send_total", "ack_phase", "bw", "bw_latest",
    "bw_lo", "bw_probe_samples", "bw_probe_up_acks", "bw_probe_up_rounds", "bw_probe_wait",
    "clusters", "competing", "cwnd_gain", "cwnd_limited", "cycle_count", "cycle_stamp",
    "extra_acked", "filled_pipe", "full_bw", "full_bw_count", "full_bw_now",
    "inflight_hi", "inflight_latest", "inflight_lo", "loss_in_round", "loss_round_start",
    "loss_tolerant", "lost_in_round", "max_bw", "min_pipe_cwnd", "min_rtt", "min_rtt_stamp",
    "pacing_gain", "pacing_rate", "path_loss_rate", "prior_cwnd", "probe_base_rtt",
    "probe_rtt_done_stamp", "probe_rtt_expired", "probe_rtt_min_delay", "probe_rtt_min_stamp",
    "probe_rtt_round_done", "probe_up_cnt", "round_count", "round_start",
    "rounds_since_bw_probe", "send_loss_rate", "state", "state_changes",
)  # fmt: skip

#: unseeded controllers draw here: no 2.5 KB of generator state each
SHARED_RANDOM = random.Random()
#: Bbr.state_changes until the first change: one shared, never-appended empty list (an idle
#: connection has no list of its own; Bbr._set_state makes it one).
NO_CHANGES: list[tuple[float, str]] = []


@functools.cache
def packets(count: int, max_datagram_size: int) -> int:
    """``count`` datagrams in bytes: cached, so every connection's controller holds the same
    int object (an idle connection has none of its own)."""
    return count * max_datagram_size


def loss_noise(max_datagram_size: int) -> int:
    """LOSS_NOISE_PACKETS datagrams in bytes (a shared int, as :func:`packets`)."""
    return packets(LOSS_NOISE_PACKETS, max_datagram_size)
