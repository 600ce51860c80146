"""Running `citewise serve` as a user does, in its own process, for the browser, API and Slack tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


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


def own_server(real_llm: bool = False, concurrent: int | None = None, home: Path | None = None):
    """A server on the demo corpus in a throw-away home (and its own embedded database), with a stand-in or the
    local LLM; yields (base URL, database URL, home)."""
    from contextlib import contextmanager

    @contextmanager
    def cm():
        import subprocess
        import sys

        from tests.helpers.standin_llm import StandIn, grounded_reply

        where = home or Path(tempfile.mkdtemp(prefix="citewise-load-"))
        env = {"CITEWISE_HOME": str(where)}
        if concurrent:
            env["CITEWISE_MAX_CONCURRENT_ANSWERS"] = str(concurrent)
        subprocess.run([sys.executable, "-m", "citewise.cli", "ingest", str(ROOT / "docs"), "--source", "handbook"],
                       env={**os.environ, **env}, check=True, capture_output=True)
        from core import db
        from core.settings import Settings

        url = db.database_url(Settings.from_env({"CITEWISE_HOME": str(where)}))
        with ExitStack() as inner:
            if not real_llm:
                llm = inner.enter_context(StandIn(grounded_reply, delay_s=0.002))
                env.update(CITEWISE_LLM_BASE_URL=llm.base_url, CITEWISE_LLM_MODEL="standin",
                           CITEWISE_LLM_API_KEY="x")
            else:  # the user's own local LLM server (started or reused in their CITEWISE_HOME)
                from chat.engine.llm import endpoint

                local = endpoint(Settings.from_env().llm)
                env.update(CITEWISE_LLM_BASE_URL=local.base_url, CITEWISE_LLM_MODEL=local.model or "local",
                           CITEWISE_LLM_API_KEY=local.api_key or "x")
                env.setdefault("CITEWISE_MAX_CONCURRENT_ANSWERS", "1")  # what serve uses with its own local LLM
            base = inner.enter_context(serve(where, env))
            yield base, url, where
        from core import pgserver

        pgserver.stop(where / "pg")

    return cm()
