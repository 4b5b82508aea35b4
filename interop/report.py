"""interop/RESULTS.md: the matrix, how it was made, and the reasons behind every cell."""

from __future__ import annotations

import datetime
import platform
from importlib import metadata

from .evidence import PASSED, Result
from .peers import Pair
from .scenarios import Scenario

METHOD = """\
## How the cells are judged

Every cell starts a fresh server (with a TLS key log), a recording tap on the server's side of
the netem relay, the relay with the scenario's impairments, and the client run(s), each with a
hard timeout. A cell passes only when every client exits 0, every file's SHA-256 matches, the
relay's counters show the impairment happened, and the scenario's own rule holds.

The rules read the wire, not the implementations' claims: the tap records every datagram the
server sent and received; long headers (versions, Retry, 0-RTT packets) are read in the clear,
Initial packets are decrypted with keys derived from the client's Destination Connection ID
(ClientHello/ServerHello: offered and chosen cipher suites, PSK), and the server's
SSLKEYLOGFILE decrypts Handshake, 0-RTT and 1-RTT packets (EncryptedExtensions, STREAM,
PATH_CHALLENGE/PATH_RESPONSE, ACK_ECN, MAX_STREAMS, CONNECTION_CLOSE, key phase changes).
That decoder (`interop/quicwire.py`) is written independently of quicish and checked against
the RFC 9001 appendix A vectors.

- **amplificationlimit**: per client address as the server sees it, the bytes the server sent
  before validating that address (until a Handshake packet from it arrived, or an Initial with
  a token after a Retry) must stay within 3x the bytes received from it, at every datagram. The
  server's certificate is padded to about 5 KB so its first flight exceeds the limit.
- **rebind-port / rebind-addr / connectionmigration**: every new client address the server sent
  stream data to must have seen a server PATH_CHALLENGE answered by a PATH_RESPONSE from that
  address; migration must also finish the transfer on the new path.
- **ecn**: the netem relay forwards payloads with recvfrom/sendto and cannot carry the IP ECN
  bits, so this scenario runs client -> tap -> server without the relay (the tap copies the ECN
  bits); it checks ECT(0) marks in both directions and ACK frames with ECN counts from both.
- **crosstraffic**: netem is UDP-only, so a TCP flow cannot share its bottleneck. The competing
  flow is a second QUIC connection with a TCP-like NewReno sender (an aioquic server with
  `--cc reno`, reached through the same relay and routed by the tap), started first; both flows
  share the relay's 10 Mbit/s queue. Fair share: Jain's index of the two flows' server-to-client
  rates over the measured transfer >= 0.8 (neither gets 3x the other). This is QUIC-vs-QUIC
  fairness, not QUIC-vs-kernel-TCP.
- **goodput**: file bytes over the client's own elapsed time (handshake included) must reach 70%
  of the 10 Mbit/s link.
- "unsupported" means the feature is not there: the client or server said "not implemented" (or
  does not have the option), the peer is known to lack it (aioquic: no ECN, no client
  migration API), or the evidence needs a key log the server did not write.
"""


def _date() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    results: list[Result],
    scenarios: list[Scenario],
    pairs: list[Pair],
    command: str,
    elapsed: float,
) -> str:
    by_cell = {(r.scenario, r.pair): r for r in results}
    lines = [
        "# quicish interop matrix",
        "",
        f"Generated {_date()} in {elapsed / 60:.1f} min by `{command}`. Reproduce the full "
        "matrix with `make interop` "
        "(`.venv/bin/python interop/run.py --all --output interop/RESULTS.md`).",
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()}; "
        f"aioquic {_version('aioquic')} (test-only peer, `interop/peers/aioquic_hq.py`).",
        "",
    ]
    counts = {
        s: sum(1 for r in results if r.status == s) for s in ("passed", "failed", "unsupported")
    }
    lines.append(
        f"**{counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['unsupported']} unsupported** of {len(results)} cells."
    )
    lines += [
        "",
        "| scenario | network | must show | " + " | ".join(p.title for p in pairs) + " |",
        "|---|---|---|" + "---|" * len(pairs),
    ]
    for s in scenarios:
        cells = []
        for p in pairs:
            r = by_cell.get((s.name, p.label))
            cells.append(_esc(r.cell()) if r else "not run")
        lines.append(
            f"| {s.name} | {_esc(s.network)} | {_esc(s.must_show)} | " + " | ".join(cells) + " |"
        )
    lines += ["", METHOD, "## Details", ""]
    for r in results:
        head = f"- **{r.scenario}**, {r.pair}: {r.status}"
        if r.status != PASSED and r.reason:
            head += f": {r.reason}"
        head += f" ({r.seconds:.1f} s)"
        lines.append(_esc(head))
        lines += [f"  - {_esc(d)}" for d in r.details]
    lines.append("")
    return "\n".join(lines)
