"""Searches on streaming read replicas, writes on the primary (``CITEWISE_DATABASE_REPLICA_URLS``).

Only the search itself is routed: turns, feedback, history and access checks stay on the primary, so a user's
own writes are always visible to the user's next request. Documents are the one write a reader can miss on a
replica that has not replayed it yet; so ``citewise ingest`` and ``citewise worker`` wait, after committing, until
every replica has replayed the primary's WAL position (:func:`wait_caught_up`), and a search skips a replica
whose replay lag exceeds ``CITEWISE_REPLICA_MAX_LAG`` seconds. A replica that cannot be reached is skipped for
``RETRY_DOWN_S`` seconds, with one warning, and its searches go to the primary.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

import psycopg
from pgvector.psycopg import register_vector
from prometheus_client import Counter as Metric
from psycopg_pool import ConnectionPool, PoolTimeout

from core import db

log = logging.getLogger("citewise.replicas")
RETRY_DOWN_S = 10.0
SEARCHES = Metric("citewise_search_connections_total", "Searches by the server they ran on", ["target"])
SAMPLE_EVERY_S = 0.5
_PRIMARY_LSN = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
_REPLAY_LSN = "SELECT pg_wal_lsn_diff(coalesce(pg_last_wal_replay_lsn(), '0/0'), '0/0')::bigint"


class PrimaryClock:
    """How stale a replica is, in seconds: how long ago the primary had written WAL the replica has not yet
    replayed. PostgreSQL's own replay timestamp cannot say this (on an idle primary it reads "behind" since the
    last commit, however current the replica is), so the primary's WAL position is sampled, at most every
    ``SAMPLE_EVERY_S`` while searches run, and each replica's replay position is compared with the samples."""

    def __init__(self, primary: ConnectionPool) -> None:
        self.primary = primary
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=1200)
        self._lock = threading.Lock()

    def _sample(self, now: float) -> None:
        with self._lock:
            if self._samples and now - self._samples[-1][0] < SAMPLE_EVERY_S:
                return
        try:
            with self.primary.connection(timeout=2) as conn:
                lsn = int(conn.execute(_PRIMARY_LSN).fetchone()[0])
        except (psycopg.Error, PoolTimeout):
            return  # the primary is away: nothing new is written, so no replica falls further behind
        with self._lock:
            self._samples.append((now, lsn))

    def lag_s(self, replica: psycopg.Connection) -> float:
        now = time.monotonic()
        self._sample(now)
        replayed = int(replica.execute(_REPLAY_LSN).fetchone()[0])
        with self._lock:
            return next((now - t for t, lsn in self._samples if lsn > replayed), 0.0)


def wait_caught_up(primary_url: str, replica_urls: tuple[str, ...], timeout_s: float = 30.0) -> list[str]:
    """Wait until every replica has replayed what the primary has written so far; return those still behind
    (or unreachable) when ``timeout_s`` runs out, masked for printing."""
    if not replica_urls:
        return []
    with db.connect(primary_url, autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    behind: list[str] = []
    deadline = time.monotonic() + timeout_s
    for url in replica_urls:
        try:
            with db.connect(url, autocommit=True) as conn:
                while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]:
                    if time.monotonic() > deadline:
                        behind.append(db.mask_url(url))
                        break
                    time.sleep(0.1)
        except (db.DatabaseError, psycopg.Error):
            behind.append(db.mask_url(url))
    return behind


class ReadRouter:
    """Hands out connections for searches: a replica in turn when one is up and current, else the primary."""

    def __init__(self, primary: ConnectionPool, replica_urls: tuple[str, ...], max_lag_s: float,
                 pool_size: int = 10) -> None:
        self.primary = primary
        self.clock = PrimaryClock(primary)
        self.max_lag_s = max_lag_s
        self.replicas = [(url, ConnectionPool(url, min_size=0, max_size=pool_size, configure=register_vector,
                                              kwargs={"autocommit": True, "connect_timeout": 3}, open=True,
                                              name=f"citewise-replica-{i}", check=ConnectionPool.check_connection))
                         for i, url in enumerate(replica_urls)]
        self._turn = itertools.cycle(range(len(self.replicas))) if self.replicas else None
        self._down_until: dict[str, float] = {}
        self._lagging: set[str] = set()
        self._checked: dict[str, tuple[float, float]] = {}  # url -> (when, lag_s)
        self._lock = threading.Lock()
        self.served: Counter[str] = Counter()  # "primary" / "replica": where searches ran, for /metrics and tests

    def _order(self) -> list[int]:
        with self._lock:
            first = next(self._turn) if self._turn else 0
        n = len(self.replicas)
        return [(first + i) % n for i in range(n)]

    def _skip(self, url: str, why: str, *, down: bool = True) -> None:
        """Search elsewhere: for ``RETRY_DOWN_S`` when it is unreachable, for this search only when it lags."""
        with self._lock:
            first = url not in self._down_until and url not in self._lagging
            if down:
                self._down_until[url] = time.monotonic() + RETRY_DOWN_S
            else:
                self._lagging.add(url)
        if first:
            log.warning("read replica %s %s; searching on the primary until it is back", db.mask_url(url), why)

    def _lag(self, url: str, conn: psycopg.Connection) -> float:
        """The replica's staleness, re-measured at most every ``SAMPLE_EVERY_S`` (a search need not pay for it)."""
        now = time.monotonic()
        with self._lock:
            seen = self._checked.get(url)
        if seen and now - seen[0] < SAMPLE_EVERY_S:
            return seen[1]
        lag = self.clock.lag_s(conn)
        with self._lock:
            self._checked[url] = (now, lag)
        return lag

    def _acquire(self) -> tuple[ConnectionPool, psycopg.Connection]:
        for i in self._order():
            url, pool = self.replicas[i]
            if self._down_until.get(url, 0) > time.monotonic():
                continue
            try:
                conn = pool.getconn(timeout=3)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                self._skip(url, f"is unreachable ({db.first_line(exc)})")
                continue
            try:
                lag = self._lag(url, conn)
            except psycopg.Error as exc:
                pool.putconn(conn)
                self._skip(url, f"is unreachable ({db.first_line(exc)})")
                continue
            if lag > self.max_lag_s:
                pool.putconn(conn)
                self._skip(url, f"is {lag:.1f} s behind (more than CITEWISE_REPLICA_MAX_LAG)", down=False)
                continue
            with self._lock:
                if self._down_until.pop(url, None) is not None or url in self._lagging:
                    self._lagging.discard(url)
                    log.warning("read replica %s is back; searching on it again", db.mask_url(url))
                self.served["replica"] += 1
            SEARCHES.labels("replica").inc()
            return pool, conn
        with self._lock:
            self.served["primary"] += 1
        SEARCHES.labels("primary").inc()
        return self.primary, self.primary.getconn()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A connection for one search; what the search raises reaches the caller unchanged."""
        pool, conn = self._acquire()
        try:
            yield conn
        finally:
            pool.putconn(conn)

    def close(self) -> None:
        for _, pool in self.replicas:
            pool.close()
