"""User-space instructions per small request/response round trip, each side, under callgrind.

The ``rpc`` workload of ``benchmarks/peers/`` (64-byte messages echoed on one stream of an
open connection), server and client each under ``valgrind --tool=callgrind``, once with
``--many`` round trips and once with ``--few``: the difference divided by ``many - few`` is
what one more round trip costs each process (start-up, handshake and close cancel out).

    python benchmarks/rpc_instructions.py [--many 1500] [--few 500] [--root CHECKOUT]

``--root``: the checkout whose ``quicish`` and peers run (default: this one; its C core must
be built). Prints one JSON line. Needs valgrind; takes minutes (callgrind runs ~50x slower).
The server runs as ``--serve``: the peer's server, ending once its one connection is gone
(callgrind writes its counts at a normal exit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def total_instructions(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no totals in {path}")


def measure(root: Path, count: int, out: Path) -> tuple[int, int]:
    """(server, client) instructions of one run of ``count`` round trips."""
    env = dict(os.environ, PYTHONPATH=str(root))
    valgrind = ["valgrind", "--tool=callgrind", "--dump-instr=no"]
    sfile, cfile = out / f"server.{count}", out / f"client.{count}"
    server = subprocess.Popen(
        [*valgrind, f"--callgrind-out-file={sfile}", sys.executable, __file__, "--serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    port = json.loads(server.stdout.readline())["port"]
    peer = root / "benchmarks" / "peers" / "quicish_peer.py"
    client = subprocess.run(
        [*valgrind, f"--callgrind-out-file={cfile}", sys.executable, str(peer), "client",
         "--port", str(port), "--workload", "rpc", "--size", "64", "--count", str(count),
         "--timeout", "1800"],
        env=env,
        capture_output=True,
        text=True,
    )  # fmt: skip
    result = json.loads(client.stdout.strip().splitlines()[-1])
    if not result.get("ok"):
        server.kill()
        raise RuntimeError(f"client failed: {result}")
    server.wait(1800)
    return total_instructions(sfile), total_instructions(cfile)


def serve() -> None:
    """The quicish peer's server until its one client connection has come and gone."""
    root = Path(os.environ.get("PYTHONPATH", str(HERE.parent)).split(os.pathsep)[0])
    sys.path.insert(0, str(root / "benchmarks" / "peers"))
    import common
    import quicish_peer

    async def main() -> None:
        args = argparse.Namespace(cert=None, key=None)
        port = await quicish_peer.serve(common.HOST, 0, common.handle, args)
        common.emit({"port": port})
        server = quicish_peer._keep[0]
        seen = False
        while True:
            await asyncio.sleep(0.2)
            if server.connections:
                seen = True
            elif seen:
                return

    common.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--many", type=int, default=1500)
    parser.add_argument("--few", type=int, default=500)
    parser.add_argument("--root", type=Path, default=HERE.parent)
    parser.add_argument("--keep", type=Path, help="keep callgrind's files in this directory")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    with tempfile.TemporaryDirectory(prefix="quicish-rpc-cg-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        many = measure(args.root.resolve(), args.many, out)
        few = measure(args.root.resolve(), args.few, out)
    n = args.many - args.few
    print(
        json.dumps(
            {
                "root": str(args.root),
                "server_per_round_trip": round((many[0] - few[0]) / n),
                "client_per_round_trip": round((many[1] - few[1]) / n),
            }
        )
    )


if __name__ == "__main__":
    main()
