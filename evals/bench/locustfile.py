"""Users of the JSON API for locust (run by ``python -m evals.bench.load``, which reads the figures back).

Each user asks a question from the demo corpus and rates half of its answers. Requests are named for what they
got, so locust's own statistics separate them: ``ask`` (answered), ``ask: refused`` (503 with Retry-After: the
server protecting itself, not an error), ``ask: database unavailable`` (503 with Retry-After while the database
restarts) and ``feedback``. A refusal without Retry-After, any other status, or no
reply within ``CITEWISE_LOAD_TIMEOUT`` seconds is a failure. Into the folder ``CITEWISE_LOAD_OUT`` go the ids of
stored feedback (``feedback_ids``, one per line: the caller checks each acknowledged rating is in the database)
and each failure's message (``failures``).
"""

from __future__ import annotations

import os
import random
import time

from locust import HttpUser, constant, task

QUESTIONS = ["How do I filter search results by date?", "Which file types can I ingest?",
             "What happens when an ingest is interrupted?", "How do I log in to the web UI?",
             "How do I change the sampling temperature?", "What does the settings panel hold?",
             "How are citations shown?", "How do I configure Slack?", "What is the OpenAI-compatible endpoint?",
             "How does citewise decide to abstain?"]
TIMEOUT_S = float(os.environ.get("CITEWISE_LOAD_TIMEOUT", "180"))
OUT = os.environ.get("CITEWISE_LOAD_OUT")


def note(kind: str, line: str) -> None:
    if OUT:
        with open(os.path.join(OUT, kind), "a") as fh:
            fh.write(line.replace("\n", " ") + "\n")


def fail(response, why: str) -> None:
    response.failure(why)
    note("failures", f"{response.request_meta['name']}: {why}")


class Asker(HttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.rng = random.Random(id(self))
        self.headers = {"Authorization": f"Bearer {t}"} if (t := os.environ.get("CITEWISE_LOAD_TOKEN")) else {}

    @task
    def ask_and_rate(self) -> None:
        with self.client.post("/v1/ask", json={"question": self.rng.choice(QUESTIONS)}, headers=self.headers,
                              name="ask", timeout=TIMEOUT_S, catch_response=True) as r:
            if r.status_code == 503:
                r.request_meta["name"] = "ask: database unavailable" if "database" in r.text else "ask: refused"
                if "retry-after" not in r.headers:
                    fail(r, "503 without Retry-After")
                    return
                r.success()
                wait = min(float(r.headers["retry-after"]), 2.0) * self.rng.random()
            else:
                wait = None
                if r.status_code != 200:
                    fail(r, f"HTTP {r.status_code}: {r.text[:100]}")
                    return
                turn = r.json()["turn_id"]
        if wait is not None:
            time.sleep(wait)  # locust's gevent makes this a yield to the other users
            return
        if self.rng.random() < 0.5:
            with self.client.post("/v1/feedback", json={"turn_id": turn, "value": self.rng.choice(["up", "down"]),
                                                        "comment": "load"}, headers=self.headers,
                                  name="feedback", timeout=TIMEOUT_S, catch_response=True) as f:
                if f.status_code == 503 and "retry-after" in f.headers:  # not stored, and the user is told so
                    f.request_meta["name"] = "feedback: database unavailable"
                    f.success()
                elif f.status_code != 200:
                    fail(f, f"HTTP {f.status_code}: {f.text[:100]}")
                else:
                    note("feedback_ids", str(f.json()["feedback_id"]))
