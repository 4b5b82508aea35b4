"""Headless Chromium for the tests: the binary (installed from Debian when absent, else the
test is skipped with the reason), and a page driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 and 4), for pages whose
result comes later than ``--dump-dom`` can wait for."""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


@functools.lru_cache(maxsize=1)
def chromium() -> str:
    """The chromium binary, installed with apt-get if absent; skips saying why if it
    cannot be."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (no apt-get/root)")
    result = subprocess.run(
        ["apt-get", "install", "-y", "chromium"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("chromium")
    if result.returncode != 0 or found is None:
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"chromium is not installed and apt-get could not install it: {last}")
    return found


BASE_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--host-resolver-rules=MAP localhost 127.0.0.1"]  # fmt: skip


class DevToolsPage:
    """Chromium showing ``url``, driven over the DevTools pipe."""

    def __init__(self, url: str, profile: Path, flags: list[str] | None = None) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends onto fds 3 and 4 (either may be one)
            high_r, high_w = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [chromium(), *BASE_FLAGS, *(flags or []), f"--user-data-dir={profile}",
             "--remote-debugging-pipe", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, close_fds=False,
        )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None

    def call(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        """One DevTools command's result (on the page once attached)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
                if not ready:
                    raise TimeoutError(f"no answer to {method}")
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise ConnectionError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, _, self._buffer = self._buffer.partition(b"\0")
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer["result"]
                return result

    def attach(self) -> None:
        """Attach to the page target (commands then go to it)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            targets = self.call("Target.getTargets")["targetInfos"]
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                attached = self.call("Target.attachToTarget", targetId=pages[0]["targetId"],
                                     flatten=True)  # fmt: skip
                self._session = attached["sessionId"]
                return
            time.sleep(0.1)
        raise TimeoutError("no page target")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"{expression!r} stayed false")

    def screenshot(self, path: Path) -> None:
        import base64

        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
