"""Fair waiting: askers take turns, one asker's burst is capped with a 429 that names the limit, every waiter hears
its place, and a question whose asker went away leaves the queue or, once admitted, stops the model and frees its
slot. The gate alone, then through the real desk, database and an OpenAI-protocol stand-in."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from chat.desk.frontdesk import AskRequest, Done, FrontDesk, Queued, Token
from chat.desk.gate import Gate
from chat.desk.refusals import TooMany
from chat.engine.llm import Endpoint
from chat.engine.services import Services, open_pool
from retrieval.rerank import load_reranker
from tests.corpus import documents, store_documents
from tests.helpers.standin_llm import StandIn, grounded_reply


def _waiter(gate: Gate, asker: str, name: str, order: list[str], heard: dict[str, list[int]]) -> threading.Thread:
    def run() -> None:
        gate.acquire(asker, on_position=lambda ahead: heard.setdefault(name, []).append(ahead))
        order.append(name)
        time.sleep(0.01)
        gate.release()

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.05)  # arrival order is the order of starting
    return t


def test_a_burst_from_one_asker_waits_behind_everyone_elses_single_question() -> None:
    gate, order, heard = Gate(concurrent=1, queued=50, wait_s=20), [], {}
    gate.acquire("user:script")  # the script's first question went straight in: its answer is running
    threads = [_waiter(gate, "user:script", f"script{i}", order, heard) for i in range(1, 10)]
    threads += [_waiter(gate, "user:ada", "ada", order, heard), _waiter(gate, "door:api", "api", order, heard)]
    assert gate._waiting == 11
    # each waiter was told its place: ada and the api caller (served nothing yet) before the script's second
    assert heard["script1"][0] == 0 and heard["ada"][0] == 0 and heard["api"][0] == 1
    assert heard["script1"][-1] == 2 and heard["script9"][-1] == 10
    gate.release()
    for t in threads:
        t.join(20)
    # ada and the anonymous API caller each waited for the answer already running, not for the script's ten
    assert order[:2] == ["ada", "api"], order
    assert order[2:] == [f"script{i}" for i in range(1, 10)], "within one asker's line, arrival order holds"
    assert gate._waiting == 0 and gate._running == 0 and not gate._lines


def test_one_asker_over_their_limit_gets_a_429_naming_it_and_others_still_queue() -> None:
    gate = Gate(concurrent=1, queued=50, wait_s=5, per_asker=2)
    gate.acquire("x")
    held = [threading.Thread(target=lambda: (gate.acquire("user:bob"), gate.release())) for _ in range(2)]
    for t in held:
        t.start()
    time.sleep(0.2)
    with pytest.raises(TooMany) as refused:
        gate.acquire("user:bob")
    assert refused.value.status == 429 and refused.value.retry_after
    assert "CITEWISE_MAX_QUEUED_PER_ASKER=2" in str(refused.value) and "2 questions waiting" in str(refused.value)
    other = threading.Thread(target=lambda: (gate.acquire("user:cy"), gate.release()))
    other.start()
    time.sleep(0.1)
    assert gate._waiting == 3
    gate.release()
    for t in [*held, other]:
        t.join(5)
    assert gate._waiting == 0 and gate._running == 0


def test_a_waiter_that_goes_away_leaves_the_line_and_the_others_move_up() -> None:
    gate = Gate(concurrent=1, queued=10, wait_s=10)
    gate.acquire("x")

    async def main() -> list[int]:
        seen: list[int] = []

        async def wait(asker: str, into: list[int] | None) -> None:
            async for ahead in gate.wait_turn(asker):
                if into is not None:
                    into.append(ahead)
            gate.release()

        first = asyncio.ensure_future(wait("user:a", None))
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(wait("user:b", seen))
        await asyncio.sleep(0.1)
        first.cancel()  # the tab was closed
        await asyncio.sleep(0.1)
        assert gate._waiting == 1
        gate.release()
        await asyncio.wait_for(second, 5)
        return seen

    assert asyncio.run(main()) == [1, 0], "b was second in line, then first when a left"
    assert gate._waiting == 0 and gate._running == 0


@pytest.fixture
def desk_with_slow_model(url, conn, embedder, settings):
    store_documents(conn, embedder, settings, documents())
    pool = open_pool(url, 4)
    # a grounded sentence six times, four characters every quarter second: ~4 s to the first verified sentence,
    # ~25 s for the whole answer
    with StandIn(lambda req: " ".join([grounded_reply(req)] * 6), delay_s=0.25) as llm:
        end = Endpoint(llm.base_url, "k", "standin", False)
        yield FrontDesk(Services(settings, pool, embedder, load_reranker(settings.rerank), end))  # type: ignore[arg-type]
    pool.close()


def test_an_answer_whose_asker_went_away_stops_and_frees_its_slot_at_once(desk_with_slow_model, conn) -> None:
    desk = desk_with_slow_model
    q = desk.receive(AskRequest(text="How many vacation days do new employees get?", channel="api",
                                user_id="ada", operator=True))

    async def main() -> tuple[list, float]:
        items: list = []

        async def consume() -> None:
            async for item in desk.stream(q):
                items.append(item)

        task = asyncio.ensure_future(consume())
        for _ in range(200):
            await asyncio.sleep(0.05)
            if desk.gate._running == 1:
                break
        await asyncio.sleep(2.0)  # admitted, searching, then writing
        task.cancel()  # the SSE client disconnected
        gone = time.perf_counter()
        while desk.gate._running and time.perf_counter() - gone < 10:
            await asyncio.sleep(0.05)
        return items, time.perf_counter() - gone

    items, freed_after = asyncio.run(main())
    assert desk.gate._running == 0 and freed_after < 2.0, freed_after  # the model had ~20 s left to write
    assert not any(isinstance(i, Done) for i in items)
    time.sleep(0.5)
    status, error = conn.execute("SELECT status, error FROM turns WHERE user_id = 'ada' "
                                 "ORDER BY created_at DESC LIMIT 1").fetchone()
    assert status == "failed" and "asker went away" in error


def test_the_desk_tells_a_streamed_question_its_place_before_its_tokens(desk_with_slow_model) -> None:
    desk = desk_with_slow_model
    desk.gate.acquire("user:someone-else")  # an answer is running
    q = desk.receive(AskRequest(text="How many vacation days do new employees get?", channel="web",
                                user_id="bea", operator=True))

    async def main() -> list:
        items: list = []
        agen = desk.stream(q)
        items.append(await agen.__anext__())
        desk.gate.release()
        async for item in agen:
            items.append(item)
            if isinstance(item, Token):
                await agen.aclose()
                break
        return items

    items = asyncio.run(main())
    assert items[0] == Queued(0) and items[0].text.startswith("Waiting for a free answer slot: yours is next")
    assert isinstance(items[-1], Token)
    assert Queued(3).text.endswith("3 questions ahead of you…")


def test_a_failed_place_notice_costs_no_place_and_leaks_no_ticket() -> None:
    """Slack's chat_update can fail (rate limits): the waiter keeps waiting, and nothing is left at a line's head."""
    gate = Gate(concurrent=1, queued=10, wait_s=10)
    gate.acquire("x")
    got: list[str] = []

    def shaky(_ahead: int) -> None:
        raise RuntimeError("ratelimited")

    t = threading.Thread(target=lambda: (gate.acquire("user:slack-person", on_position=shaky), got.append("in"),
                                         gate.release()))
    t.start()
    time.sleep(0.2)
    gate.release()
    t.join(5)
    assert got == ["in"] and gate._waiting == 0 and not gate._lines and gate._running == 0


def test_a_door_of_anonymous_callers_is_not_capped_like_one_person() -> None:
    """Without API tokens every API caller has one name; the per-asker cap must not turn the door away."""
    from chat.desk.frontdesk import SHARED_API_CALLER, asker
    from chat.types import Question
    from retrieval.filters import EVERYTHING

    shared = Question(text="q", conversation_id="c", channel="api", user_id=SHARED_API_CALLER, scope=EVERYTHING)
    assert asker(shared) == "door:api"
    gate = Gate(concurrent=1, queued=50, wait_s=5, per_asker=2)
    for _ in range(5):
        gate._enter(asker(shared))  # five anonymous callers queue; a person would be refused at the third
    assert gate._waiting == 5
    with pytest.raises(TooMany):
        for _ in range(3):
            gate._enter("user:ada")
