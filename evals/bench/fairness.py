"""Fair waiting, measured with the real local LLM: one asker (a script) queues a burst of questions, then another
person asks one. How long does the person wait for a slot, against the length of one answer?

    python -m evals.bench.fairness [--burst 10]

Both gates run in the same sitting on the same desk, database and model: "arrival order" puts every question in
one line (the gate before fair waiting: everyone is the same asker), "fair" gives the script and the person lines
of their own. The person's wait is the time from asking to the answer starting (their whole time minus their own
answer's time); the target is at most one answer's time (the one already running when they asked).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from pathlib import Path

from chat.desk.frontdesk import AskRequest, FrontDesk
from chat.engine.services import open_services
from core.settings import Settings
from evals.isolated import isolated_database
from retrieval.ingest import IngestOptions, ingest

DOCS = Path(__file__).resolve().parents[2] / "docs"
QUESTIONS = ["How do I filter search results by date?", "Which sampling presets exist?",
             "What happens when a PDF is corrupt?", "How do I keep documents visible only to HR?",
             "How is the answer checked before it is shown?", "How do I roll back a learned retriever?",
             "What does citewise doctor check?", "How many sources does an answer cite by default?",
             "How do I ask a follow-up question?", "Which file types can be ingested?"]
PERSON = "What does a Slack user see while the answer is being prepared?"


def sitting(desk: FrontDesk, fair: bool, burst: int) -> dict:
    done: dict[str, tuple[float, float, float]] = {}  # name -> (asked, finished, own answer ms)

    def ask(name: str, user: str | None, text: str) -> None:
        asked = time.perf_counter()
        answer = desk.ask(AskRequest(text=text, channel="eval", user_id=user, operator=True,
                                     conversation_id=str(uuid.uuid4()), temperature=0.0, seed=1))
        done[name] = (asked, time.perf_counter(), answer.latency.get("total_ms", 0.0))

    threads = []
    for i in range(burst):
        threads.append(threading.Thread(target=ask, args=(f"script{i}", "script" if fair else None,
                                                          QUESTIONS[i % len(QUESTIONS)])))
        threads[-1].start()
        time.sleep(0.05)
    time.sleep(1.0)  # the script's first answer is being written when the person asks
    person = threading.Thread(target=ask, args=("person", "person" if fair else None, PERSON))
    person.start()
    for t in [*threads, person]:
        t.join()
    asked, finished, own = done["person"]
    answers = [v[2] / 1000 for v in done.values()]
    return {"gate": "fair" if fair else "arrival order", "burst": burst,
            "person_wait_s": round(finished - asked - own / 1000, 1), "person_total_s": round(finished - asked, 1),
            "one_answer_median_s": round(statistics.median(answers), 1),
            "one_answer_max_s": round(max(answers), 1),
            "script_last_finished_s": round(max(v[1] for k, v in done.items() if k != "person") - asked, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    settings = Settings.from_env()
    from core import db

    url = isolated_database(db.database_url(settings), "citewise_bench_fairness", fresh=False)
    import dataclasses

    settings = dataclasses.replace(settings, database_url=url,
                                   desk=dataclasses.replace(settings.desk, max_queued_answers=64,
                                                            queue_wait_s=1800.0))
    services = open_services(settings)
    try:
        with services.pool.connection() as conn:
            empty = conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
        if empty:
            ingest(url, services.embedder, [DOCS], settings, IngestOptions(source="handbook"))
        desk = FrontDesk(services)
        desk.ask(AskRequest(text="Which sampling presets exist?", channel="eval", user_id=None, operator=True))
        results = [sitting(desk, False, args.burst), sitting(desk, True, args.burst)]
    finally:
        services.close()
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
