"""Slack channel history as a source: each thread of a channel is one document, synced by the same machinery as
folders (retrieval/sources.py, where this module registers the kind ``slack``) through the Slack Web API
(``SLACK_BOT_TOKEN``; ``CITEWISE_SLACK_API_URL`` points it elsewhere, as the tests do at a local stand-in).

A thread's "stat" is its reply count and the time of its last reply or edit, read from ``conversations.history``
alone, so an unchanged thread costs no further call; a new or changed one is read whole with
``conversations.replies``. A thread deleted from the channel disappears from the history and its document goes.

Access follows the channel: its documents belong to the group ``slack:CHANNEL``, and each sync makes the channel's
members (``conversations.members``, Slack user ids: the names the Slack door asks as) exactly that group's members.
Someone who leaves the channel stops seeing its threads at the next sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from core.settings import Settings
from retrieval.sources import Kind, Listing, Source, SourceUnreachable, register

_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,30}$")
# membership and housekeeping messages, and replies also sent to the channel (their thread holds them already)
_SKIPPED = {"channel_join", "channel_leave", "channel_topic", "channel_purpose", "channel_name", "bot_add",
            "thread_broadcast"}


class SlackSourceError(SourceUnreachable):
    """The Slack Web API refused or could not be reached; the message carries Slack's error."""


@dataclass(frozen=True)
class Thread:
    channel: str
    ts: str
    stat: tuple[int, int]  # (replies, last reply or edit in microseconds)

    @property
    def identity(self) -> tuple[str, dict[str, Any]]:
        return f"slack://{self.channel}/{self.ts}", {"channel": self.channel, "thread_ts": self.ts}


def slack_channel(location: str) -> str:
    """``slack:C0123ABC`` → ``C0123ABC`` (a channel id: names change, ids do not)."""
    channel = location.removeprefix("slack:").strip().lstrip("#")
    if not _CHANNEL.match(channel):
        raise ValueError(f"{location!r}: write slack:CHANNEL_ID, for example slack:C0123ABCD (the id is at the "
                         "bottom of the channel's About tab)")
    return channel


def channel_group(channel: str) -> str:
    return f"slack:{channel}"


def slack_client(settings: Settings) -> Any:
    from slack_sdk import WebClient

    if not settings.slack.bot_token:
        raise SlackSourceError("SLACK_BOT_TOKEN is not set; a Slack source reads the channel with the bot's token")
    return WebClient(token=settings.slack.bot_token, base_url=settings.slack.api_url or WebClient.BASE_URL)


def _pages(client: Any, method: str, key: str, **params: Any) -> list[Any]:
    from slack_sdk.errors import SlackApiError

    out, cursor = [], None
    while True:
        try:
            page = getattr(client, method)(**params, cursor=cursor, limit=200)
        except SlackApiError as exc:
            raise SlackSourceError(f"{method.replace('_', '.', 1)}: {exc.response.get('error', exc)}") from None
        except OSError as exc:
            raise SlackSourceError(f"{method.replace('_', '.', 1)}: {exc}") from None
        out += page.get(key) or []
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return out


def _micros(ts: str | None) -> int:
    return round(float(ts or 0) * 1_000_000)


def list_threads(client: Any, channel: str) -> dict[str, Thread]:
    """Every thread (a top-level message and its replies) of the channel, keyed ``CHANNEL/TS``."""
    threads = {}
    for m in _pages(client, "conversations_history", "messages", channel=channel):
        if m.get("subtype") in _SKIPPED or not m.get("ts"):
            continue
        last = max(_micros(m.get("latest_reply")), _micros((m.get("edited") or {}).get("ts")), _micros(m["ts"]))
        threads[f"{channel}/{m['ts']}"] = Thread(channel, m["ts"], (int(m.get("reply_count") or 0), last))
    return threads


def write_threads(client: Any, channel: str, keys: list[str], folder: Path) -> dict[str, Path]:
    """Each thread read whole and written as a Markdown file for the ingest pipeline: its first line as title,
    then one paragraph per message, ``<@USER>: text``."""
    out = {}
    for key in keys:
        ts = key.split("/", 1)[1]
        messages = _pages(client, "conversations_replies", "messages", channel=channel, ts=ts)
        first = next((m.get("text") or "" for m in messages), "").strip().splitlines() or ["(empty)"]
        body = "\n\n".join(f"<@{m.get('user') or m.get('bot_id') or 'someone'}>: {(m.get('text') or '').strip()}"
                           for m in messages if (m.get("text") or "").strip())
        path = folder / f"{channel}-{ts}.md"
        path.write_text(f"# {first[0][:100]}\n\n{body}\n")
        out[key] = path
    return out


def sync_members(conn: psycopg.Connection, channel: str, client: Any) -> None:
    """Make the channel's members exactly the members of its access group."""
    members = sorted(_pages(client, "conversations_members", "members", channel=channel))
    group = channel_group(channel)
    with conn.transaction():
        conn.execute("UPDATE app_users SET groups = array_remove(groups, %s) WHERE %s = ANY(groups) "
                     "AND NOT (name = ANY(%s))", (group, group, members))
        for user in members:
            conn.execute("INSERT INTO app_users (name, groups) VALUES (%s, ARRAY[%s]) ON CONFLICT (name) DO UPDATE "
                         "SET groups = CASE WHEN %s = ANY(app_users.groups) THEN app_users.groups "
                         "ELSE array_append(app_users.groups, %s::text) END", (user, group, group, group))


def listing(conn: psycopg.Connection, src: Source, settings: Settings) -> Listing:
    """The channel's threads for a sync; the channel's members become its group's members first."""
    channel = slack_channel(src.location)
    client = slack_client(settings)
    threads = list_threads(client, channel)
    sync_members(conn, channel, client)
    return Listing({k: t.stat for k, t in threads.items()},
                   lambda keys, tmp: write_threads(client, channel, keys, tmp),
                   identity=lambda k: threads[k].identity, groups=(channel_group(channel),))


register(Kind("slack", "slack:", lambda loc: f"slack:{slack_channel(loc)}",
              lambda loc: f"slack://{slack_channel(loc)}/", listing))
