"""Parsing untrusted files in a child process with a time and memory budget.

PDF and HTML parsers can be driven into long or huge work by a hostile file (a decompression bomb, pathological
nesting). The parse runs in a forked child; the parent watches its resident memory and the clock and kills it when
either budget is spent, so one file never takes the ingest down or holds it up.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from typing import Any


class LimitExceeded(Exception):
    """The parse ran out of time or memory, or the parser died; the message says which and the setting to raise."""


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _child(fn: Callable[..., Any], args: tuple, conn) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # sent back and re-raised in the parent with its message
        conn.send(("error", exc))
    finally:
        conn.close()


def run_limited(fn: Callable[..., Any], *args: Any, timeout_s: float, memory_mb: float) -> Any:
    """``fn(*args)`` in a child process; its exceptions are re-raised here, budgets raise LimitExceeded."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    base = _rss_mb(os.getpid())  # a forked child starts sharing the parent's pages; count only what it adds
    proc = ctx.Process(target=_child, args=(fn, args, send), daemon=True)
    proc.start()
    send.close()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if receive.poll(0.05):
                try:
                    status, value = receive.recv()
                except EOFError:  # the child exited without a word (killed, or os._exit)
                    proc.join(5)
                    raise LimitExceeded(f"the parser died (exit code {proc.exitcode})") from None
                proc.join(5)
                if status == "error":
                    raise value
                return value
            if not proc.is_alive():
                raise LimitExceeded(f"the parser died (exit code {proc.exitcode})")
            if time.monotonic() > deadline:
                raise LimitExceeded(f"took longer than {timeout_s:g} s to parse (CITEWISE_FILE_TIMEOUT)")
            used = _rss_mb(proc.pid) - base
            if used > memory_mb:
                raise LimitExceeded(f"needed more than {memory_mb:g} MB to parse, a decompression bomb or a huge "
                                    "file (CITEWISE_FILE_MEMORY_MB)")
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(5)
        receive.close()
