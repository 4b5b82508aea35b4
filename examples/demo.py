"""`make demo`: a real transfer of a generated file between a `quicish serve` process and a
`quicish get` process on loopback, verified by SHA-256, with the throughput printed; both
write qlog (`--qlog-dir`), and the demo prints the files, the server's summary and the plot
of the transfer (`python -m quicish.qlog plot`, with the optional matplotlib)."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="quicish-demo-"))
    root, out, qlog = work / "www", work / "downloads", work / "qlog"
    root.mkdir()
    source = root / "demo.bin"
    with open(source, "wb") as fh:
        for _ in range(args.size_mb):
            fh.write(os.urandom(1 << 20))
    print(f"generated {args.size_mb} MB file {source}")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quicish",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--root",
            str(root),
            "--qlog-dir",
            str(qlog),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        pin = port = None
        deadline = time.monotonic() + 30
        while (pin is None or port is None) and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            print("server:", line.rstrip())
            if m := re.search(r"fingerprint: ([0-9a-f]+)", line):
                pin = m.group(1)
            if m := re.search(r"listening on [^:]+:(\d+)", line):
                port = int(m.group(1))
        if pin is None or port is None:
            print("demo: the server did not start", file=sys.stderr)
            return 1
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "quicish",
                "get",
                f"https://127.0.0.1:{port}/demo.bin",
                "--pin",
                pin,
                "--output",
                str(out),
                "--qlog-dir",
                str(qlog),
            ],
            timeout=600,
        )
        if result.returncode != 0:
            print("demo: transfer failed", file=sys.stderr)
            return 1
    finally:
        server.send_signal(signal.SIGINT)  # (a clean stop: the server's qlog is complete)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    want, got = sha256(source), sha256(out / "demo.bin")
    print(f"SHA-256 sent     {want}\nSHA-256 received {got}")
    if want != got:
        print("demo: MISMATCH", file=sys.stderr)
        return 1
    print("demo: OK, the file arrived intact")
    show_qlog(qlog, work / "transfer.png")
    return 0


def show_qlog(qlog: Path, image: Path) -> None:
    """Print the qlog files, the sender's summary and the plot's path (or how to get it)."""
    files = sorted(qlog.glob("*.sqlog"))
    for path in files:
        print(f"qlog: {path}")
    senders = [p for p in files if p.name.endswith("_server.sqlog")]
    if not senders:
        return
    tool = [sys.executable, "-m", "quicish.qlog"]
    subprocess.run([*tool, "summary", str(senders[0])], timeout=300)
    plot = subprocess.run(
        [*tool, "plot", str(senders[0]), "-o", str(image), "--title", "make demo: the server"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if plot.returncode == 0:
        print(f"plot: {image}")
    else:
        print("plot: not drawn: install matplotlib (pip install 'quicish[plot]') and run")
        print(f"      python -m quicish.qlog plot {senders[0]} -o {image}")


if __name__ == "__main__":
    sys.exit(main())
