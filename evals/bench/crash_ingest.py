"""Crash safety of the ingest: SIGKILL at random points, then check nothing is half-stored and a re-run equals a
clean ingest. Prints one line per trial and a JSON summary.

    python -m evals.bench.crash_ingest [--trials 20] [--docs 300] [--seed 0]

Each trial uses its own database on the embedded server (or CITEWISE_DATABASE_URL's server). After the kill it
checks: no document without chunks, no document missing some of its chunks (ordinals without gaps), no chunk
without an embedding or keyword vector, and the trigger-kept keyword statistics equal a recount. Then the ingest
is run again to completion and the (document id, chunk id, text hash) rows must equal those of a clean ingest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from core import db
from core.settings import Settings
from evals.isolated import isolated_database


def corpus(root: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    words = ("policy process invoice badge server deploy review budget travel leave hiring audit backup "
             "release incident contract laptop network training").split()
    for i in range(n):
        paragraphs = [" ".join(rng.choice(words) for _ in range(rng.randint(40, 120))) + "." for _ in range(6)]
        (root / f"doc{i:04d}.md").write_text(f"# Document {i}\n\n" + "\n\n## Part\n\n".join(paragraphs))
    return root


def rows(url: str) -> set[tuple]:
    with psycopg.connect(url) as conn:
        return set(conn.execute("SELECT d.id, c.id, c.text_hash FROM documents d "
                                "JOIN chunks c ON c.document_id = d.id").fetchall())


def problems(url: str) -> list[str]:
    found = []
    with psycopg.connect(url) as conn:
        q = conn.execute
        if n := q("SELECT count(*) FROM documents d WHERE NOT EXISTS (SELECT 1 FROM chunks c "
                  "WHERE c.document_id = d.id)").fetchone()[0]:
            found.append(f"{n} documents without chunks")
        if n := q("SELECT count(*) FROM (SELECT document_id, max(ordinal) + 1 AS n, count(*) AS c FROM chunks "
                  "GROUP BY document_id) s WHERE n <> c").fetchone()[0]:
            found.append(f"{n} documents missing some chunks")
        if n := q("SELECT count(*) FROM chunks WHERE embedding IS NULL OR keyword_vec IS NULL").fetchone()[0]:
            found.append(f"{n} chunks without embedding or keyword vector")
        stored = dict(q("SELECT term_id, df FROM keyword_df WHERE df > 0").fetchall())
        recount = dict(q("SELECT t, count(*) FROM chunks, unnest(keyword_terms) t GROUP BY t").fetchall())
        if stored != recount:
            found.append("keyword document frequencies differ from a recount")
        if q("SELECT n_chunks, total_len FROM keyword_stats").fetchone() != q(
                "SELECT count(*), coalesce(sum(keyword_len), 0) FROM chunks").fetchone():
            found.append("keyword totals differ from a recount")
    return found


def ingest_cmd(url: str, folder: Path) -> list[str]:
    return [sys.executable, "-m", "citewise.cli", "ingest", str(folder), "--source", "crash"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    server = db.database_url(Settings.from_env())
    folder = corpus(Path(tempfile.mkdtemp(prefix="citewise-crash-")), args.docs, args.seed)
    clean_url = isolated_database(server, "citewise_crash_clean", fresh=True)
    env = {**os.environ, "CITEWISE_DATABASE_URL": clean_url}
    t = time.perf_counter()
    subprocess.run(ingest_cmd(clean_url, folder), env=env, check=True, capture_output=True)
    clean_s = time.perf_counter() - t
    reference = rows(clean_url)
    print(f"clean ingest: {args.docs} documents, {len(reference)} chunks in {clean_s:.1f} s", flush=True)
    trials = []
    for i in range(args.trials):
        url = isolated_database(server, f"citewise_crash_{i}", fresh=True)
        env = {**os.environ, "CITEWISE_DATABASE_URL": url}
        delay = rng.uniform(0.2, clean_s * 0.7)  # inside the ingest (the model loads first), rarely after it
        proc = subprocess.Popen(ingest_cmd(url, folder), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        partial = len(rows(url))
        after_kill = problems(url)
        subprocess.run(ingest_cmd(url, folder), env=env, check=True, capture_output=True)
        equal = rows(url) == reference
        trial = {"trial": i, "kill_after_s": round(delay, 2), "finished_before_kill": finished,
                 "chunks_at_kill": partial, "problems_after_kill": after_kill, "rerun_equals_clean": equal,
                 "problems_after_rerun": problems(url)}
        trials.append(trial)
        print(json.dumps(trial), flush=True)
        with psycopg.connect(server.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "citewise_crash_{i}" WITH (FORCE)')
    ok = all(not t["problems_after_kill"] and t["rerun_equals_clean"] and not t["problems_after_rerun"]
             for t in trials)
    print(json.dumps({"trials": len(trials), "killed_mid_ingest": sum(not t["finished_before_kill"] for t in trials),
                      "all_consistent_and_equal": ok,
                      "chunks_at_kill": sorted(t["chunks_at_kill"] for t in trials)}, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
