"""The web UI's parts without a browser: settings panel, rendering, logins, the Chainlit data layer, feedback review."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re

import pytest
from chainlit.types import Feedback, Pagination, ThreadFilter
from chainlit.user import User

from chat.feedback.review import to_csv, to_jsonl
from chat.sampling import Sampling
from chat.turns.reads import feedback_rows
from chat.turns.store import record_turn
from chat.types import ABSTAIN_TEXT, Answer, Citation, Question
from chat.web.auth import logins, parse_users
from chat.web.datalayer import CitewiseDataLayer
from chat.web.panel import PanelError, apply, defaults
from chat.web.render import answer_markdown, escape, source_page
from core.settings import DeskSettings, Settings, SettingsError
from retrieval import filters
from retrieval.loaders import front_matter
from retrieval.types import Document
from tests.corpus import store_documents


def test_choosing_a_preset_resets_the_sliders_and_moving_one_makes_it_custom() -> None:
    start = defaults("precise", 5)
    balanced = apply({"preset": "balanced"}, start, MOST)
    assert balanced.sampling.preset == "balanced" and balanced.values["temperature"] == 0.4
    moved = apply({**balanced.values, "temperature": 0.7}, balanced.values, MOST)
    assert moved.sampling.preset == "custom" and moved.sampling.temperature == 0.7
    assert moved.sampling.top_k == 40 and moved.values["preset"] == "balanced"
    assert apply({**start, "temperature": 0.30000000000000004}, start, MOST).sampling.temperature == 0.3


MOST = DeskSettings.max_sources  # the desk's limit, which the panel is given


def test_panel_values_become_filters_and_bad_values_are_named() -> None:
    c = apply({"filter_sources": ["handbook"], "author": "Ada", "date_from": "2025-01-01", "date_to": "2025-12-31",
               "tags": ["faq"]}, defaults("precise", 5), MOST)
    assert [(f.field, f.op) for f in c.filters] == [("source", "in"), ("author", "="), ("updated", ">="),
                                                   ("updated", "<="), ("tags", "in")]
    assert c.filters[3].value.hour == 23
    with pytest.raises(PanelError, match="updated: 'last week' is not a date"):
        apply({"date_from": "last week"}, defaults("precise", 5), MOST)
    with pytest.raises(PanelError, match="top_p=0 would allow no token"):
        apply({"top_p": 0}, defaults("precise", 5), MOST)
    with pytest.raises(PanelError, match=r"number of sources must be 1\.\.20"):
        apply({"sources": 40}, defaults("precise", 5), MOST)


def test_a_passage_is_shown_as_the_text_it_is() -> None:
    """Chainlit's Markdown takes ":word" for a directive and drops it; every colon of a passage is escaped, so
    the side panel shows "alice:password1,bob:password2" as written (found by a newcomer, issue 24)."""
    c = Citation(1, ("c1",), "d1", "Logins", "ops", "logins.md", 0, 29, "alice:password1,bob:password2", None)
    page = source_page(c, "")
    assert "alice\\:password1,bob\\:password2" in page
    unescaped = re.sub(r"\\(.)", r"\1", page.rsplit("---", 1)[1]).strip()
    assert unescaped == "alice:password1,bob:password2"


def test_document_text_is_rendered_inert_and_the_supporting_sentence_is_bold() -> None:
    assert escape("<script>alert(1)</script> [x](javascript:1) @channel") == (
        "\\<script\\>alert\\(1\\)\\</script\\> \\[x\\]\\(javascript\\:1\\) @\u200bchannel")
    c = Citation(1, ("c1",), "d1", "Leave", "hr", "leave.md", 0, 90,
                 "Staff get 25 days of leave. Requests go to the manager. Parking is free.", "2025-01-02")
    page = source_page(c, "Requests for leave go to the manager [1].")
    assert "**Requests go to the manager.**" in page and "**Staff" not in page
    assert "**Date:** 2025-01-02" in page and "**Characters:** 0–90" in page
    abstained = Answer(text=ABSTAIN_TEXT, citations=(), sources=(c,), abstained=True, turn_id="t",
                       standalone_question="q", prompt_version=None, model=None)
    text, listed = answer_markdown(abstained)
    assert text.startswith("> **Not found in the sources.**") and "Closest sources" in text and listed == [c]


def test_model_output_cannot_fetch_images_or_hide_link_targets() -> None:
    from chat.web.render import defang

    assert defang("See ![x](http://evil.example/p?d=1) now [1].") == "See [image: x] now [1]."
    assert defang("Log in [here](http://evil.example/login) [2].") == "Log in here (`http://evil.example/login`) [2]."
    assert defang("<javascript:alert(1)> and [1][2]") == "`javascript:alert(1)` and [1][2]"
    assert defang("**bold** and `code` stay") == "**bold** and `code` stay"


def test_logins_from_configuration_and_a_generated_demo_password(tmp_path) -> None:
    assert parse_users("alice:a1, bob:b:2") == {"alice": "a1", "bob": "b:2"}
    with pytest.raises(SettingsError, match="needs NAME:PASSWORD"):
        parse_users("alice")
    demo = logins(Settings.from_env({"CITEWISE_HOME": str(tmp_path)}))
    password = demo.passwords["demo"]
    assert demo.demo and len(password) >= 16 and demo.check("demo", password) and not demo.check("demo", "demo")
    assert (tmp_path / "web" / "demo-password").stat().st_mode & 0o777 == 0o600
    assert logins(Settings.from_env({"CITEWISE_HOME": str(tmp_path)})).passwords["demo"] == password
    assert not demo.check("nobody", password)


def test_front_matter_gives_title_author_dates_and_a_tags_filter(conn, embedder, settings, tmp_path) -> None:
    meta, body = front_matter("---\ntitle: On-call\nauthor: Ada\ndate: 2025-03-01\ntags: [ops, faq]\n---\n# x\ny")
    assert meta == {"title": "On-call", "author": "Ada", "date": "2025-03-01", "tags": ["ops", "faq"]}
    assert body == "# x\ny"
    store_documents(conn, embedder, settings, [
        Document(source="kb", uri="a.md", title="A", text="Pager rotation is weekly.", metadata={"tags": ["ops"]}),
        Document(source="kb", uri="b.md", title="B", text="Pager batteries are in the drawer."),
    ])
    where, params = filters.compile_filters([filters.parse("tags in ops,faq")])
    rows = conn.execute(b"SELECT d.uri FROM documents d WHERE " + where.as_bytes(conn), params).fetchall()
    assert rows == [("a.md",)]


def _turn(conn, user: str, conversation: str, ref: str) -> str:
    q = Question(text="How many days of leave?", conversation_id=conversation, channel="web", user_id=user,
                 scope=filters.EVERYTHING, sampling=Sampling(temperature=0.3), client_ref=ref)
    a = Answer(text="25 days [1].", citations=(), sources=(), abstained=False, turn_id=None, standalone_question=q.text,
               prompt_version="v1", model="standin")
    return record_turn(conn, q, a, [], "answer")


@pytest.fixture
def web_desk(url, settings, embedder):
    """The web UI's context as `citewise serve` installs it: a front desk on the test database."""
    from chat.desk.frontdesk import FrontDesk
    from chat.engine.llm import Endpoint
    from chat.engine.services import Services, open_pool
    from chat.web import mount
    from retrieval.rerank import load_reranker

    services = Services(settings, open_pool(url, 2), embedder, load_reranker(settings.rerank),
                        Endpoint("http://127.0.0.1:9", "x", "m", False))
    mount.install(mount.WebContext(FrontDesk(services), logins(settings), None))  # type: ignore[arg-type]
    yield mount
    services.pool.close()


def test_data_layer_keeps_threads_per_user_and_maps_thumbs_to_turns(url, conn, web_desk) -> None:
    async def scenario():
        layer = CitewiseDataLayer(url, pool_size=2)
        signed_in = web_desk.REQUEST_USER.set("alice")  # what the server's KnownUser middleware records
        try:
            alice = await layer.create_user(User(identifier="alice"))
            bob = await layer.create_user(User(identifier="bob"))
            await layer.update_thread("t-alice", name="Leave", user_id=alice.id, metadata={"settings": {"a": 1}})
            await layer.create_step({"id": "run-1", "threadId": "t-alice", "type": "run", "name": "on_message",
                                     "createdAt": "2026-01-01T10:00:00Z", "output": "", "showInput": False})
            await layer.create_step({"id": "msg-1", "threadId": "t-alice", "parentId": "run-1",
                                     "type": "assistant_message", "output": "25 days [1].",
                                     "createdAt": "2026-01-01T10:00:01Z"})
            turn = _turn(conn, "alice", "t-alice", "run-1")
            fid = await layer.upsert_feedback(Feedback(forId="run-1", value=0, threadId="t-alice", comment="old"))
            again = await layer.upsert_feedback(Feedback(forId="run-1", value=1, threadId="t-alice", id=fid,
                                                         comment="fine after all"))
            with pytest.raises(ValueError, match="only answers take feedback"):
                await layer.upsert_feedback(Feedback(forId="msg-1", value=1, threadId="t-alice"))
            web_desk.REQUEST_USER.set("bob")  # another user may not rate alice's answer, even knowing its ids
            with pytest.raises(ValueError, match="only the person who asked it, or an admin"):
                await layer.upsert_feedback(Feedback(forId="run-1", value=0, threadId="t-alice"))
            web_desk.REQUEST_USER.reset(signed_in)
            mine = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=alice.id))
            theirs = await layer.list_threads(Pagination(first=10), ThreadFilter(userId=bob.id))
            thread = await layer.get_thread("t-alice")
            author = await layer.get_thread_author("t-alice")
            return turn, fid, again, mine, theirs, thread, author
        finally:
            await layer.close()

    turn, fid, again, mine, theirs, thread, author = asyncio.run(scenario())
    assert again == fid and author == "alice"
    assert [t["id"] for t in mine.data] == ["t-alice"] and theirs.data == []
    assert thread["metadata"] == {"settings": {"a": 1}}
    run_step = next(s for s in thread["steps"] if s["id"] == "run-1")
    assert run_step["feedback"] == {"id": fid, "forId": "run-1", "value": 1, "comment": "fine after all"}
    assert run_step["showInput"] is False and run_step["createdAt"] == "2026-01-01T10:00:00Z"
    row = conn.execute("SELECT value, comment, user_id, channel, sampling->>'temperature' FROM feedback "
                       "WHERE turn_id = %s", (turn,)).fetchall()
    assert row == [(1, "fine after all", "alice", "web", "0.3")]


def test_feedback_review_lists_and_exports_with_the_turn(run, conn) -> None:
    from chat.turns.store import record_feedback

    up = _turn(conn, "alice", "c1", "r1")
    down = _turn(conn, "bob", "c2", "r2")
    record_feedback(conn, up, "up", "good", user_id="alice", channel="web")
    record_feedback(conn, down, "down", 'wrong "date", see [1]', user_id="bob", channel="web")
    rows = feedback_rows(conn, down_only=True)
    assert [r["turn_id"] for r in rows] == [down] and rows[0]["sampling"]["temperature"] == 0.3
    parsed = list(csv.DictReader(io.StringIO(to_csv(feedback_rows(conn)))))
    assert {r["comment"] for r in parsed} == {"good", 'wrong "date", see [1]'}
    assert json.loads(parsed[0]["sampling"])["temperature"] == 0.3
    assert [json.loads(line)["value"] for line in to_jsonl(rows).splitlines()] == ["down"]

    listed = run("feedback", "list", "--down", "--json")
    assert listed.exit_code == 0 and [r["comment"] for r in json.loads(listed.stdout)] == ['wrong "date", see [1]']
    exported = run("feedback", "export", "--out", "-", "--format", "csv", "--since", "2000-01-01")
    assert exported.exit_code == 0 and exported.stdout.count("\n") >= 3
    assert run("feedback", "list", "--since", "yesterday").exit_code == 2


def test_a_closed_tab_is_not_a_server_error() -> None:
    """Chainlit's middleware raises "No response returned." when the browser leaves before the UI answers: not
    logged as a fault. Any other error, or the same one outside the UI, still propagates."""
    import asyncio

    import pytest

    from chat.server import ClosedTabs

    def app_raising(exc: Exception):
        async def app(scope, receive, send):
            raise exc
        return app

    async def call(app, path: str) -> None:
        await ClosedTabs(app)({"type": "http", "path": path}, None, None)

    asyncio.run(call(app_raising(RuntimeError("No response returned.")), "/chat/project/settings"))
    with pytest.raises(RuntimeError, match="No response"):
        asyncio.run(call(app_raising(RuntimeError("No response returned.")), "/v1/ask"))
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(call(app_raising(RuntimeError("boom")), "/chat/"))
