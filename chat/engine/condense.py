"""Stage before retrieval: turn a follow-up into a standalone question, from this user's own history.

Only the user's own turns count: a shared thread (Slack) must not carry another reader's answers across.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from langchain_core.messages import HumanMessage

import prompts
from chat.engine.generate import chat_model
from chat.engine.services import Services
from chat.sampling import Sampling
from chat.turns.store import history
from chat.types import Question


@dataclass(frozen=True)
class Condensed:
    question: str  # what is searched for and answered
    condense_ms: float | None  # None when there was no history to condense with


def condense(services: Services, q: Question) -> Condensed:
    """The standalone question; the LLM is asked only when the conversation has history."""
    if q.history is not None:
        past = list(q.history)
    else:
        with services.pool.connection() as conn:
            past = history(conn, q.conversation_id, q.user_id, services.settings.desk.history_turns)
    if not past:
        return Condensed(q.text, None)
    t = time.perf_counter()
    lines = "\n".join(f"User: {u}\nAssistant: {a}" for u, a in past)
    prompt = prompts.load("condense").render(history=lines, question=q.text)
    greedy = Sampling(temperature=0.0, top_k=1, max_tokens=96, seed=0)
    model = chat_model(services.model(), greedy, 60.0, streaming=False)
    text = str(model.invoke([HumanMessage(prompt)]).content).strip().strip('"').splitlines()
    standalone = text[0].strip() if text and text[0].strip() else q.text
    return Condensed(standalone, (time.perf_counter() - t) * 1000)
