"""Running `citewise serve` as a user does, in its own process, for the browser, API and Slack tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(home: Path, env: dict[str, str], timeout: float = 120.0, procs: list | None = None) -> Iterator[str]:
    """Start the server on a free loopback port with ``env`` added; yield its base URL; stop it. The process is
    appended to ``procs`` for tests that kill it."""
    port = free_port()
    full = {**os.environ, "CITEWISE_HOME": str(home), "CITEWISE_PORT": str(port), **env}
    log_path = home / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "citewise.cli", "serve"], env=full, stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT)
        if procs is not None:
            procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout
        try:
            while True:
                try:
                    if httpx.get(f"{base}/chat/", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the server did not come up:\n" + log_path.read_text())
                time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
