"""Parsing untrusted files in a child process with a time and memory budget.

PDF and HTML parsers can be driven into long or huge work by a hostile file (a decompression bomb, pathological
nesting). The parse runs in a forked child; the parent watches its resident memory and the clock and kills it when
either budget is spent, so one file never takes the ingest down or holds it up.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Callable
from typing import Any


class LimitExceeded(Exception):
    """The parse ran out of time or memory, or the parser died; the message says which and the setting to raise."""


def _status_mb(pid: int | str, field: str) -> float:
    """A memory figure (``VmRSS``, ``VmSize``) of a process from /proc, in MB; 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


def _child(fn: Callable[..., Any], args: tuple, conn, memory_mb: float) -> None:
    try:
        # the kernel enforces the budget (the parent's watch polls, and a fast allocation can finish between polls):
        # the forked child's address space so far, plus what it may add
        if vm := _status_mb("self", "VmSize"):
            limit = int((vm + memory_mb) * 2**20)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        conn.send(("ok", fn(*args)))
    except MemoryError:
        conn.send(("memory", None))
    except BaseException as exc:  # sent back and re-raised in the parent with its message
        conn.send(("error", exc))
    finally:
        conn.close()


def _too_big(memory_mb: float) -> LimitExceeded:
    return LimitExceeded(f"needed more than {memory_mb:g} MB to parse, a decompression bomb or a huge file "
                         "(CITEWISE_FILE_MEMORY_MB)")


def run_limited(fn: Callable[..., Any], *args: Any, timeout_s: float, memory_mb: float) -> Any:
    """``fn(*args)`` in a child process; its exceptions are re-raised here, budgets raise LimitExceeded."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    base = _rss_mb(os.getpid())  # a forked child starts sharing the parent's pages; count only what it adds
    proc = ctx.Process(target=_child, args=(fn, args, send, memory_mb), daemon=True)
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
                if status == "memory":
                    raise _too_big(memory_mb)
                if status == "error":
                    raise value
                return value
            if not proc.is_alive():
                raise LimitExceeded(f"the parser died (exit code {proc.exitcode})")
            if time.monotonic() > deadline:
                raise LimitExceeded(f"took longer than {timeout_s:g} s to parse (CITEWISE_FILE_TIMEOUT)")
            used = _rss_mb(proc.pid) - base
            if used > memory_mb:
                raise _too_big(memory_mb)
    finally:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(5)
        receive.close()
