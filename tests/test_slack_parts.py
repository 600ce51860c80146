"""Slack pieces without the HTTP server: the answer flow against the Web API stand-in, and mrkdwn safety."""

from __future__ import annotations

import dataclasses

import pytest
from slack_sdk import WebClient

from chat.desk.frontdesk import FrontDesk
from chat.engine.llm import Endpoint
from chat.engine.services import Services, open_pool
from chat.slack.bot import answer_event, channel_filters
from chat.slack.render import answer_blocks, escape, source_line
from chat.types import Answer, Citation
from core.access import add_user
from core.settings import SettingsError, SlackSettings
from retrieval.rerank import load_reranker
from tests.corpus import documents, store_documents
from tests.helpers.standin_llm import StandIn
from tests.slack_standin import SlackStandIn


@pytest.fixture
def pool(url, conn, embedder, settings):
    store_documents(conn, embedder, settings, documents())
    add_user(conn, "U1", ["hr", "finance", "eng"], admin=False, legal_hold=False)
    p = open_pool(url, 2)
    yield p
    p.close()


def _services(pool, embedder, settings, llm: StandIn, interval: float) -> FrontDesk:
    s = dataclasses.replace(settings, slack=SlackSettings(update_interval_s=interval))
    llm_endpoint = Endpoint(llm.base_url, "k", "standin", False)
    return FrontDesk(Services(s, pool, embedder, load_reranker(s.rerank), llm_endpoint))


def test_the_answer_streams_into_the_placeholder_with_rate_limited_updates(pool, embedder, settings) -> None:
    reply = ("New employees get 25 vacation days per year, as the handbook states [1]. Unused vacation days "
             "carry over until March [1]. New employees get those 25 vacation days every year [1].")
    with StandIn(reply, delay_s=0.05) as llm, SlackStandIn() as slack:
        client = WebClient(token="xoxb-x", base_url=slack.base_url)
        event = {"channel": "C1", "user": "U1", "ts": "10.1", "text": "<@UBOT> How many vacation days?"}
        answer_event(_services(pool, embedder, settings, llm, interval=0.3), client, event, {})
    [placeholder] = slack.of("chat.postMessage")
    updates = slack.of("chat.update")
    partial = [u for u in updates if not u.get("blocks")]
    assert placeholder["thread_ts"] == "10.1" and placeholder["text"] == "Searching…"
    assert 1 <= len(partial) <= 5, "streamed sentence by sentence, at most one update per interval"
    assert all(u["text"].rstrip(" …").endswith(".") for u in partial), "only whole verified sentences are shown"
    assert all(u["ts"] == placeholder["_ts"] for u in updates) and updates[-1]["blocks"]


def test_a_failing_llm_reaches_the_user_as_a_short_message(pool, embedder, settings) -> None:
    with StandIn("Vacation days are 25 per year [1].", fail_after_chunks=2) as llm, SlackStandIn() as slack:
        client = WebClient(token="xoxb-x", base_url=slack.base_url)
        answer_event(_services(pool, embedder, settings, llm, 0), client,
                     {"channel": "C1", "user": "U1", "ts": "11.1", "text": "How many vacation days?"}, {})
    last = slack.of("chat.update")[-1]
    assert last["text"].startswith(":x: Sorry, I could not answer that") and "blocks" not in last


def test_mrkdwn_is_inert_and_links_cannot_be_spoofed() -> None:
    assert escape("<!channel> <@U123> <http://evil|bank> & co") == (
        "&lt;!channel&gt; &lt;@U123&gt; &lt;http://evil|bank&gt; &amp; co")
    web = Citation(1, ("c",), "d", "Guide <b>|x", "wiki", "https://wiki.example.com/guide", 0, 5, "t")
    assert source_line(web) == "[1] <https://wiki.example.com/guide|Guide &lt;b&gt;¦x> · wiki"
    local = dataclasses.replace(web, uri="/srv/docs/a b.md")
    assert "<" not in source_line(local) and "`/srv/docs/a b.md`" in source_line(local)
    answer = Answer(text="**25 days** <!here> [1].", citations=(web,), sources=(web,), abstained=False,
                    turn_id="turn-1", standalone_question="q", prompt_version="v", model="m")
    blocks = answer_blocks(answer)
    assert blocks[0]["text"]["text"] == "*25 days* &lt;!here&gt; [1]."
    assert [e["value"] for e in blocks[-1]["elements"]] == ["turn-1", "turn-1"]


def test_channel_filters_are_validated_at_start() -> None:
    parsed = channel_filters(SlackSettings(channel_filters='{"C1": ["source = hr"], "*": ["groups = staff"]}'))
    assert parsed["C1"][0].value == "hr" and parsed["*"][0].field == "groups"
    with pytest.raises(SettingsError, match="unknown filter field 'team'"):
        channel_filters(SlackSettings(channel_filters='{"C1": ["team = x"]}'))
    with pytest.raises(SettingsError, match="CITEWISE_SLACK_CHANNEL_FILTERS"):
        channel_filters(SlackSettings(channel_filters="[1, 2]"))


def test_http_events_without_a_signing_secret_are_refused_unless_in_local_test_mode(pool, embedder, settings) -> None:
    from chat.slack.bot import build
    from core.settings import SettingsError

    def desk_with(slack: SlackSettings) -> FrontDesk:
        s = dataclasses.replace(settings, slack=slack)
        return FrontDesk(Services(s, pool, embedder, load_reranker(s.rerank), None))  # type: ignore[arg-type]

    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET is not set"):
        build(desk_with(SlackSettings(bot_token="xoxb-x")))
    assert build(desk_with(SlackSettings(bot_token="xoxb-x", insecure_local_test=True)))
    assert build(desk_with(SlackSettings(bot_token="xoxb-x", signing_secret="s" * 32)))


def test_old_retry_claims_are_pruned(pool, embedder, settings, conn) -> None:
    from chat.slack.bot import claim_event

    conn.execute("INSERT INTO slack_events (event_id, received_at) VALUES ('EvOld', now() - interval '3 days'), "
                 "('EvRecent', now() - interval '1 hour')")
    services = Services(settings, pool, embedder, load_reranker(settings.rerank), None)  # type: ignore[arg-type]
    assert claim_event(services, "EvNew") and not claim_event(services, "EvRecent")
    left = {r[0] for r in conn.execute("SELECT event_id FROM slack_events")}
    assert left == {"EvRecent", "EvNew"}
