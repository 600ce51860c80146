"""Slack channel history as a source: one document per thread, synced through the Slack Web API (the local
stand-in speaking its protocol, paged as Slack pages), readable only by the channel's members, and exact: a new
reply re-reads its thread alone, a deleted thread's document goes, a member who leaves stops seeing it."""

from __future__ import annotations

import dataclasses

import pytest

from chat.slack import source as _slack_source  # noqa: F401 (registers the kind)
from core import access
from retrieval import sources
from retrieval.filters import Scope
from retrieval.search import search
from tests.slack_standin import SlackStandIn


def _msg(ts: str, user: str, text: str) -> dict:
    return {"type": "message", "ts": ts, "user": user, "text": text, "thread_ts": ts.split("-")[0]}


@pytest.fixture
def slack():
    with SlackStandIn() as s:
        s.channels["C0TEAM"] = {"members": ["U1", "U2"], "threads": {
            "1700000001.000100": [_msg("1700000001.000100", "U1", "Where is the on-call rota kept?"),
                                  _msg("1700000002.000100", "U2", "The on-call rota lives in the ops wiki under "
                                                                  "Rotations, updated every Friday.")],
            "1700000003.000100": [_msg("1700000003.000100", "U2", "The coffee machine on floor 3 is broken "
                                                                  "until Tuesday.")],
            "1700000004.000100": [_msg("1700000004.000100", "U1", "Deploys freeze from 20 December to 2 January.")],
        }}
        s.channels["C0TEAM"]["threads"]["1700000000.000050"] = [
            {"type": "message", "subtype": "channel_join", "ts": "1700000000.000050", "user": "U2", "text": "joined"}]
        yield s


def texts(conn, embedder, query: str, user: str) -> list[str]:
    scope = Scope.of(access.resolve(conn, user), public_ungrouped=True)
    return [h.text for h in search(conn, embedder, query, scope=scope, k=10)]


def test_a_channel_syncs_thread_by_thread_for_its_members_only(url, conn, embedder, settings, slack) -> None:
    cfg = dataclasses.replace(settings, slack=dataclasses.replace(settings.slack, bot_token="xoxb-test",
                                                                  api_url=slack.base_url))
    sources.add(conn, sources.Source("team-chat", "slack:C0TEAM"))
    conn.commit()
    first = sources.sync(url, embedder, cfg, "team-chat")
    assert first.ok and first.counts["added"] == 3 and first.counts["files"] == 3, first  # the join is no thread
    assert len(slack.of("conversations.history")) == 2, "the history's two pages were both read"
    uris = {r[0] for r in conn.execute("SELECT uri FROM documents WHERE source = 'team-chat'")}
    assert "slack://C0TEAM/1700000001.000100" in uris
    groups = {tuple(r[0]) for r in conn.execute("SELECT access_groups FROM documents WHERE source = 'team-chat'")}
    assert groups == {("slack:C0TEAM",)}
    assert any("ops wiki" in t for t in texts(conn, embedder, "where is the on-call rota", "U1"))
    assert not any("ops wiki" in t for t in texts(conn, embedder, "where is the on-call rota", "U3"))

    threads = slack.channels["C0TEAM"]["threads"]
    threads["1700000001.000100"].append(_msg("1700000009.000100", "U1", "Moved: the rota is now in PagerDuty."))
    del threads["1700000003.000100"]
    threads["1700000010.000100"] = [_msg("1700000010.000100", "U2", "The VPN certificate renews on 1 March.")]
    slack.channels["C0TEAM"]["members"] = ["U1"]
    before = len(slack.of("conversations.replies"))
    second = sources.sync(url, embedder, cfg, "team-chat")
    c = second.counts
    assert (c["read"], c["skipped"], c["added"], c["updated"], c["deleted"]) == (2, 1, 1, 1, 1), c
    read = {p["ts"] for p in slack.of("conversations.replies")[before:]}
    assert read == {"1700000001.000100", "1700000010.000100"}, "only the changed and the new thread were read"
    assert any("PagerDuty" in t for t in texts(conn, embedder, "where is the on-call rota", "U1"))
    assert not any("coffee machine" in t for t in texts(conn, embedder, "coffee machine broken", "U1"))
    assert not texts(conn, embedder, "VPN certificate", "U2"), "a member who left sees nothing of the channel"


def test_an_unknown_channel_or_missing_token_deletes_nothing_and_says_why(url, conn, embedder, settings,
                                                                          slack) -> None:
    cfg = dataclasses.replace(settings, slack=dataclasses.replace(settings.slack, bot_token="xoxb-test",
                                                                  api_url=slack.base_url))
    sources.add(conn, sources.Source("team-chat", "slack:C0TEAM"))
    conn.commit()
    assert sources.sync(url, embedder, cfg, "team-chat").counts["added"] == 3
    del slack.channels["C0TEAM"]
    gone = sources.sync(url, embedder, cfg, "team-chat")
    assert not gone.ok and "channel_not_found" in gone.result and "nothing was deleted" in gone.result
    assert conn.execute("SELECT count(*) FROM documents WHERE source = 'team-chat'").fetchone()[0] == 3
    untokened = sources.sync(url, embedder, settings, "team-chat")
    assert not untokened.ok and "SLACK_BOT_TOKEN" in untokened.result
    with pytest.raises(sources.SourceError, match="slack:CHANNEL_ID"):
        sources.add(conn, sources.Source("bad", "slack:#general"))
