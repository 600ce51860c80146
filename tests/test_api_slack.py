"""The HTTP API, the OpenAI-compatible endpoint and the Slack bot, against a running `citewise serve`.

Slack's Web API is unreachable here: a local stand-in speaks the methods the bot calls, and the tests post
correctly (and incorrectly) signed events and interactions to the server as Slack would.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from urllib.parse import urlencode

import httpx
import psycopg
import pytest

from tests.helpers.serving import serve
from tests.helpers.standin_llm import StandIn, grounded_reply
from tests.slack_standin import SlackStandIn

SECRET = "8f14e45fceea167a5a36dedd4bea2543"
TOKEN = "carol-token-0123456789abcdef"
DAVE = "dave-token-0123456789abcdef"
MARKER = "ZEBRA-7731"
Q = "Which file types can I ingest?"


@pytest.fixture(scope="module")
def stack(demo_db, tmp_path_factory):
    with StandIn(grounded_reply) as llm, SlackStandIn() as slack, serve(tmp_path_factory.mktemp("api-home"), {
        "CITEWISE_DATABASE_URL": demo_db, "CITEWISE_LLM_BASE_URL": llm.base_url, "CITEWISE_LLM_MODEL": "standin",
        "CITEWISE_LLM_API_KEY": "x", "CITEWISE_API_TOKENS": f"carol:{TOKEN},dave:{DAVE}",
        "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET, "CITEWISE_SLACK_API_URL": slack.base_url,
        "CITEWISE_SLACK_CHANNEL_FILTERS": json.dumps({"CARCHIVE": ["source = archive"]}),
        "CITEWISE_SLACK_ALLOWED_USERS": "U1,U2", "CITEWISE_SLACK_UPDATE_INTERVAL": "0",
        "CITEWISE_WEB_AUTH_HEADER": "X-Forwarded-User",
    }) as base:
        yield base, llm, slack


def db(url: str):
    return psycopg.connect(url, autocommit=True)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --- JSON API ---------------------------------------------------------------------------------------------------

def test_ask_answers_with_citations_and_follow_ups_use_the_conversation(stack, demo_db) -> None:
    base, llm, _ = stack
    r = httpx.post(f"{base}/v1/ask", json={"question": Q, "sampling": {"temperature": 0.2}}, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["abstained"] and body["citations"] and body["turn_id"]
    assert body["citations"][0]["source"] == "handbook" and f"[{body['citations'][0]['number']}]" in body["answer"]
    before = len(llm.requests)
    r2 = httpx.post(f"{base}/v1/ask", json={"question": "and which keeps headings?",
                                            "conversation_id": body["conversation_id"]}, headers=AUTH, timeout=60)
    assert r2.status_code == 200 and r2.json()["conversation_id"] == body["conversation_id"]
    condense = [x for x in llm.requests[before:] if not x.get("stream")]
    assert condense and Q in condense[0]["messages"][-1]["content"]
    with db(demo_db) as conn:
        row = conn.execute("SELECT user_id, channel, sampling->>'temperature' FROM turns WHERE id = %s",
                           (body["turn_id"],)).fetchone()
    assert row == ("carol", "api", "0.2")

    fb = httpx.post(f"{base}/v1/feedback", json={"turn_id": body["turn_id"], "value": "down", "comment": "vague",
                                                 "citation": body["citations"][0]["number"]}, headers=AUTH)
    assert fb.status_code == 200 and fb.json()["stored"]
    with db(demo_db) as conn:
        assert conn.execute("SELECT value, comment, user_id, channel FROM feedback WHERE id = %s",
                            (fb.json()["feedback_id"],)).fetchone() == (-1, "vague", "carol", "api")
    missing = httpx.post(f"{base}/v1/feedback", json={"turn_id": str(uuid.uuid4()), "value": "up"}, headers=AUTH)
    assert missing.status_code == 404


def test_ask_streams_server_sent_events(stack) -> None:
    base, _, _ = stack
    events = []
    with httpx.stream("POST", f"{base}/v1/ask?stream=true", json={"question": Q}, headers=AUTH, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    kinds = [e for e, _ in events]
    assert kinds.count("token") >= 1 and kinds[-1] == "answer"
    streamed = "".join(d["text"] for e, d in events if e == "token")
    assert streamed == events[-1][1]["answer"] and events[-1][1]["citations"], "what streamed is the answer"


def test_bad_requests_get_clear_4xx(stack) -> None:
    base, _, _ = stack
    cases = [
        ({"question": Q, "sampling": {"temperature": 5}}, 422, "temperature=5.0 is out of range"),
        ({"question": Q, "filters": ["colour = red"]}, 422, "unknown filter field 'colour'"),
        ({"question": Q, "mood": "happy"}, 422, "mood"),
        ({"question": "x" * 5000}, 413, "limit is 4000"),
        ({"question": Q, "sampling": {"preset": "wild"}}, 422, "unknown preset 'wild'"),
    ]
    for body, status, needle in cases:
        r = httpx.post(f"{base}/v1/ask", json=body, headers=AUTH, timeout=30)
        assert r.status_code == status and needle in r.text, (body, r.status_code, r.text)
    assert httpx.post(f"{base}/v1/ask", json={"question": Q}).status_code == 401
    nope = httpx.post(f"{base}/v1/ask", json={"question": Q}, headers={"Authorization": "Bearer nope"})
    assert nope.status_code == 401


def test_header_login_behind_a_proxy(stack) -> None:
    base, _, _ = stack
    ok = httpx.post(f"{base}/chat/auth/header", headers={"X-Forwarded-User": "erin"})
    assert ok.status_code == 200 and "access_token" in ok.headers.get("set-cookie", "")
    assert httpx.post(f"{base}/chat/auth/header").status_code == 401


def test_health_and_openapi_docs(stack) -> None:
    base, _, _ = stack
    assert httpx.get(f"{base}/v1/health").json() == {"database": "ok", "llm": "ok", "model": "standin"}
    spec = httpx.get(f"{base}/openapi.json").json()
    assert {"/v1/ask", "/v1/feedback", "/v1/health", "/v1/chat/completions"} <= set(spec["paths"])
    assert httpx.get(f"{base}/docs").status_code == 200


def test_an_openai_client_chats_with_the_corpus(stack) -> None:
    from openai import OpenAI

    base, _, _ = stack
    client = OpenAI(base_url=f"{base}/v1", api_key=TOKEN)
    reply = client.chat.completions.create(model="citewise", messages=[{"role": "user", "content": Q}])
    text = reply.choices[0].message.content
    cited = reply.model_extra["citations"]
    assert "Sources:" in text and f"[{cited[0]['number']}]" in text
    assert reply.model_extra["citations"] and reply.model_extra["citewise"]["turn_id"]
    stream = client.chat.completions.create(model="citewise", stream=True, messages=[
        {"role": "user", "content": Q}, {"role": "assistant", "content": text},
        {"role": "user", "content": "and which keeps headings?"}])
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "Sources:" in streamed


# --- Slack ------------------------------------------------------------------------------------------------------

def _signed(body: str, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = ts or int(time.time())
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig}


def _event(base: str, event: dict, event_id: str | None = None, headers: dict | None = None) -> httpx.Response:
    body = json.dumps({"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event": event,
                       "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}", "event_time": int(time.time())})
    return httpx.post(f"{base}/slack/events", content=body, timeout=10,
                      headers={"Content-Type": "application/json", **_signed(body), **(headers or {})})


def _interaction(base: str, payload: dict) -> httpx.Response:
    body = urlencode({"payload": json.dumps(payload)})
    return httpx.post(f"{base}/slack/events", content=body, timeout=10,
                      headers={"Content-Type": "application/x-www-form-urlencoded", **_signed(body)})


def _mention(channel: str, user: str, text: str, ts: str, thread_ts: str | None = None) -> dict:
    e = {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}", "ts": ts, "channel": channel}
    if thread_ts:
        e["thread_ts"] = thread_ts
    return e


def _final_update(slack: SlackStandIn, ts: str) -> dict:
    slack.wait_for(lambda: any(u.get("ts") == ts and u.get("blocks") for u in slack.of("chat.update")))
    return next(u for u in slack.of("chat.update") if u.get("ts") == ts and u.get("blocks"))


def test_a_mention_gets_one_threaded_cited_answer_and_follow_ups_use_the_thread(stack, demo_db) -> None:
    base, llm, slack = stack
    sent = time.time()
    r = _event(base, _mention("CGEN", "U1", Q, "1800000000.000100"), "EvMention1")
    assert r.status_code == 200
    slack.wait_for(lambda: any(p.get("thread_ts") == "1800000000.000100" for p in slack.of("chat.postMessage")))
    placeholder_at = next(t for m, p, t in slack.calls if m == "chat.postMessage"
                          and p.get("thread_ts") == "1800000000.000100")
    assert placeholder_at - sent < 3.0, "the placeholder must beat Slack's 3-second window"
    placeholder = [p for p in slack.of("chat.postMessage") if p.get("thread_ts") == "1800000000.000100"]
    assert len(placeholder) == 1 and placeholder[0]["text"] == "Searching…"
    final = _final_update(slack, placeholder[0]["_ts"])
    text = json.dumps(final["blocks"])
    assert "*Sources*" in text and "handbook" in text and "feedback_up" in text and "feedback_down" in text
    turn_id = next(b for b in final["blocks"] if b["type"] == "actions")["elements"][0]["value"]

    # retried delivery of the same event: acknowledged, never answered twice
    retry = _event(base, _mention("CGEN", "U1", Q, "1800000000.000100"), "EvMention1",
                   {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retry.status_code == 200
    time.sleep(1.5)
    assert len([p for p in slack.of("chat.postMessage") if p.get("thread_ts") == "1800000000.000100"]) == 1

    # a follow-up in the thread is condensed with the thread's history
    before = len(llm.requests)
    _event(base, _mention("CGEN", "U1", "and which keeps headings?", "1800000000.000200", "1800000000.000100"))
    slack.wait_for(lambda: len([p for p in slack.of("chat.postMessage")
                                if p.get("thread_ts") == "1800000000.000100"]) == 2)
    slack.wait_for(lambda: any(not x.get("stream") for x in llm.requests[before:]))
    condense = next(x for x in llm.requests[before:] if not x.get("stream"))
    assert Q in condense["messages"][-1]["content"]
    with db(demo_db) as conn:
        rows = conn.execute("SELECT id::text, user_id, channel FROM turns WHERE conversation_id = %s "
                            "ORDER BY created_at", ("slack:CGEN:1800000000.000100",)).fetchall()
    assert rows[0] == (turn_id, "U1", "slack") and len(rows) >= 1


def test_buttons_store_feedback_and_thumbs_down_asks_what_was_wrong(stack, demo_db) -> None:
    base, _, slack = stack
    _event(base, _mention("CGEN", "U2", Q, "1800000001.000100"))
    slack.wait_for(lambda: any(p.get("thread_ts") == "1800000001.000100" for p in slack.of("chat.postMessage")))
    with db(demo_db) as conn:
        deadline = time.time() + 30
        while not (row := conn.execute("SELECT id::text FROM turns WHERE conversation_id = %s",
                                       ("slack:CGEN:1800000001.000100",)).fetchone()) and time.time() < deadline:
            time.sleep(0.2)
    turn = row[0]
    up = _interaction(base, {"type": "block_actions", "user": {"id": "U2"}, "trigger_id": "trig-1",
                             "response_url": slack.response_url, "team": {"id": "T1"},
                             "actions": [{"action_id": "feedback_up", "value": turn, "type": "button"}]})
    assert up.status_code == 200
    with db(demo_db) as conn:  # committed before the click was acknowledged
        assert conn.execute("SELECT value, user_id, channel FROM feedback WHERE turn_id = %s",
                            (turn,)).fetchall() == [(1, "U2", "slack")]
    stranger = _interaction(base, {"type": "block_actions", "user": {"id": "U9"}, "trigger_id": "trig-9",
                                   "response_url": slack.response_url, "team": {"id": "T1"},
                                   "actions": [{"action_id": "feedback_up", "value": turn, "type": "button"}]})
    assert stranger.status_code == 200  # acknowledged, and told only the asker or an admin may rate it
    with db(demo_db) as conn:
        assert conn.execute("SELECT count(*) FROM feedback WHERE turn_id = %s AND user_id = 'U9'",
                            (turn,)).fetchone()[0] == 0
    down = _interaction(base, {"type": "block_actions", "user": {"id": "U2"}, "trigger_id": "trig-2",
                               "response_url": slack.response_url, "team": {"id": "T1"},
                               "actions": [{"action_id": "feedback_down", "value": turn, "type": "button"}]})
    assert down.status_code == 200
    slack.wait_for(lambda: slack.of("views.open"))
    opened = slack.of("views.open")[-1]
    assert opened["trigger_id"] == "trig-2" and opened["view"]["callback_id"] == "feedback_modal"
    meta = opened["view"]["private_metadata"]
    submit = _interaction(base, {"type": "view_submission", "user": {"id": "U2"}, "team": {"id": "T1"},
                                 "view": {"id": "V1", "type": "modal", "callback_id": "feedback_modal",
                                          "private_metadata": meta, "state": {
                                     "values": {"comment": {"text": {"type": "plain_text_input",
                                                                     "value": "wrong section"}},
                                                "citation": {"number": {"type": "static_select",
                                                                        "selected_option": {"value": "1"}}}}}}})
    assert submit.status_code == 200
    with db(demo_db) as conn:
        rows = conn.execute("SELECT value, comment, citation, user_id FROM feedback WHERE turn_id = %s "
                            "AND NOT on_source ORDER BY id", (turn,)).fetchall()
        rated = conn.execute(
            "SELECT f.value, f.citation, f.user_id, f.channel, f.chunk_id = (SELECT c->'chunk_ids'->>0 FROM "
            "jsonb_array_elements(t.citations) c WHERE (c->>'number')::int = f.citation) FROM feedback f "
            "JOIN turns t ON t.id = f.turn_id WHERE f.turn_id = %s AND f.on_source", (turn,)).fetchall()
    assert rows == [(1, None, None, "U2"), (-1, "wrong section", 1, "U2")]
    # the source the modal named is rated in the shape the web UI's per-source buttons store
    assert rated == [(-1, 1, "U2", "slack", True)]


def test_bad_or_stale_signatures_get_401_and_nothing_happens(stack) -> None:
    base, _, slack = stack
    calls = len(slack.calls)
    body = json.dumps({"type": "event_callback", "event_id": "EvBad", "event": _mention("CGEN", "U1", Q, "1.1")})
    bad = httpx.post(f"{base}/slack/events", content=body, headers={
        "Content-Type": "application/json", **_signed(body, secret="not-the-secret")})
    stale = httpx.post(f"{base}/slack/events", content=body, headers={
        "Content-Type": "application/json", **_signed(body, ts=int(time.time()) - 600)})
    unsigned = httpx.post(f"{base}/slack/events", content=body, headers={"Content-Type": "application/json"})
    assert (bad.status_code, stale.status_code, unsigned.status_code) == (401, 401, 401)
    time.sleep(1)
    assert len(slack.calls) == calls


def test_channel_filters_and_allowed_users(stack, demo_db) -> None:
    base, _, slack = stack
    _event(base, _mention("CARCHIVE", "U1", "Which file types does the archive keep?", "1800000002.000100"))
    slack.wait_for(lambda: any(p.get("thread_ts") == "1800000002.000100" for p in slack.of("chat.postMessage")))
    with db(demo_db) as conn:
        deadline = time.time() + 30
        while not (row := conn.execute("SELECT filters, citations FROM turns WHERE conversation_id = %s",
                                       ("slack:CARCHIVE:1800000002.000100",)).fetchone()) and time.time() < deadline:
            time.sleep(0.2)
    assert row[0] == [{"field": "source", "op": "=", "value": "archive"}]
    assert row[1] and {c["source"] for c in row[1]} == {"archive"}

    _event(base, _mention("CGEN", "U9", Q, "1800000003.000100"))
    slack.wait_for(lambda: any(p.get("thread_ts") == "1800000003.000100" for p in slack.of("chat.postMessage")))
    refusal = next(p for p in slack.of("chat.postMessage") if p.get("thread_ts") == "1800000003.000100")
    assert "not on the list" in refusal["text"]


def test_url_verification_challenge(stack) -> None:
    base, _, _ = stack
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
    r = httpx.post(f"{base}/slack/events", content=body, headers={"Content-Type": "application/json",
                                                                  **_signed(body)})
    assert r.status_code == 200 and "abc123" in r.text


# --- access control through every HTTP door ---------------------------------------------------------------------

def test_restricted_documents_stay_behind_every_http_door(stack, demo_db, embedder, settings, tmp_path) -> None:
    from openai import OpenAI

    from core.access import add_user
    from retrieval.ingest import IngestOptions, ingest
    from tests.conftest import write_files

    base, llm, slack = stack
    vault = write_files(tmp_path / "vault", {"vault.md": f"# Vault\n\nThe vault combination is {MARKER}, "
                                                         "kept by the facilities team."})
    ingest(demo_db, embedder, [vault], settings, IngestOptions(source="facilities", groups=("secret",)))
    with db(demo_db) as conn:
        add_user(conn, "carol", ["secret"], admin=False, legal_hold=False)
        add_user(conn, "U1", ["secret"], admin=False, legal_hold=False)
    q = {"question": "What is the vault combination?"}
    dave = {"Authorization": f"Bearer {DAVE}"}
    assert MARKER in httpx.post(f"{base}/v1/ask", json=q, headers=AUTH, timeout=60).text
    carol_turn = httpx.post(f"{base}/v1/ask", json=q, headers=AUTH, timeout=60).json()["turn_id"]
    assert MARKER not in httpx.post(f"{base}/v1/ask", json=q, headers=dave, timeout=60).text
    assert MARKER not in httpx.post(f"{base}/v1/ask?stream=true", json=q, headers=dave, timeout=60).text
    assert httpx.post(f"{base}/v1/feedback", json={"turn_id": carol_turn, "value": "down"},
                      headers=dave).status_code == 404, "nobody rates (or probes) another caller's turn"
    as_dave = OpenAI(base_url=f"{base}/v1", api_key=DAVE).chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": q["question"]}])
    assert MARKER not in as_dave.model_dump_json()
    as_carol = OpenAI(base_url=f"{base}/v1", api_key=TOKEN).chat.completions.create(
        model="citewise", messages=[{"role": "user", "content": q["question"]}])
    assert MARKER in as_carol.choices[0].message.content

    # Slack: U1 (group secret) asks in a thread, U2 follows up in the same thread
    _event(base, _mention("CGEN", "U1", q["question"], "1800000009.000100"))
    slack.wait_for(lambda: any(p.get("thread_ts") == "1800000009.000100" for p in slack.of("chat.postMessage")))
    first = next(p for p in slack.of("chat.postMessage") if p.get("thread_ts") == "1800000009.000100")
    assert MARKER in json.dumps(_final_update(slack, first["_ts"])["blocks"])
    n = len(llm.requests)
    _event(base, _mention("CGEN", "U2", "and who keeps it?", "1800000009.000200", "1800000009.000100"))
    slack.wait_for(lambda: len([p for p in slack.of("chat.postMessage")
                                if p.get("thread_ts") == "1800000009.000100"]) == 2)
    second = [p for p in slack.of("chat.postMessage") if p.get("thread_ts") == "1800000009.000100"][1]
    final = _final_update(slack, second["_ts"])
    assert MARKER not in json.dumps(final) and MARKER not in json.dumps(llm.requests[n:])


def test_a_direct_message_is_answered_in_its_thread_and_bot_messages_are_ignored(stack) -> None:
    base, _, slack = stack
    dm = {"type": "message", "channel_type": "im", "channel": "DU1", "user": "U1", "text": Q,
          "ts": "1800000020.000100"}
    assert _event(base, dm).status_code == 200
    slack.wait_for(lambda: any(p.get("thread_ts") == "1800000020.000100" for p in slack.of("chat.postMessage")))
    own = {**dm, "ts": "1800000021.000100", "bot_id": "BBOT", "user": "UBOT"}
    edited = {**dm, "ts": "1800000022.000100", "subtype": "message_changed"}
    _event(base, own), _event(base, edited)
    time.sleep(1.5)
    threads = {p.get("thread_ts") for p in slack.of("chat.postMessage")}
    assert "1800000021.000100" not in threads and "1800000022.000100" not in threads


def test_sources_state_on_the_api_and_in_metrics(stack, demo_db, embedder, settings, tmp_path) -> None:
    from core.access import add_user
    from retrieval import sources
    from tests.conftest import write_files

    base, _, _ = stack
    folder = write_files(tmp_path / "team", {"a.md": "# A\n\nThe team wiki's first page.",
                                             "b.md": "# B\n\nThe team wiki's second page."})
    with db(demo_db) as conn:
        sources.add(conn, sources.Source("team-wiki", str(folder)))
        add_user(conn, "dave", [], admin=True, legal_hold=False)
    (folder / "c.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    sources.sync(demo_db, embedder, settings, "team-wiki")
    assert httpx.get(f"{base}/v1/sources").status_code == 401
    seen = httpx.get(f"{base}/v1/sources", headers=AUTH).json()  # carol: not an admin
    row = next(r for r in seen if r["name"] == "team-wiki")
    assert row["documents"] == 2 and row["counts"]["failed"] == 1 and row["synced_at"]
    assert row["location"] is None and row["failures"] is None  # paths and file names are for admins
    admin = httpx.get(f"{base}/v1/sources", headers={"Authorization": f"Bearer {DAVE}"}).json()
    row = next(r for r in admin if r["name"] == "team-wiki")
    assert row["location"] == str(folder.resolve()) and "c.pdf" in row["failures"][0]["file"]
    text = httpx.get(f"{base}/metrics", timeout=10).text
    assert 'citewise_source_documents{source="team-wiki"} 2.0' in text
    assert 'citewise_source_last_sync_files{outcome="failed",source="team-wiki"} 1.0' in text
