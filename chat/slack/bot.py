"""The Slack bot (slack_bolt): threaded cited answers to mentions and direct messages, with feedback buttons.

Bolt acknowledges each event at once and runs the listener on a worker thread, so the "Searching…" placeholder is
posted well inside Slack's 3-second window; the answer then streams into it with rate-limited ``chat.update`` calls.
A thread is one conversation (``slack:CHANNEL:THREAD_TS``), so follow-ups in it get the thread's history.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk import WebClient

from chat.desk.frontdesk import AskRequest, FrontDesk, Queued, Rating, Rejected
from chat.engine.services import Services
from chat.slack.render import answer_blocks, escape, fallback_text, feedback_modal
from chat.turns.store import cited_sources
from core.settings import SettingsError, SlackSettings
from retrieval import filters as grammar

_MENTION = re.compile(r"<@[A-Z0-9]+>")


def channel_filters(cfg: SlackSettings) -> dict[str, list[grammar.Filter]]:
    """CITEWISE_SLACK_CHANNEL_FILTERS parsed and validated at start-up (a bad filter stops the bot, not a reply)."""
    if not cfg.channel_filters:
        return {}
    try:
        raw = json.loads(cfg.channel_filters)
        if not isinstance(raw, dict):
            raise ValueError("expected a JSON object")
        return {str(ch): grammar.parse_all([str(e) for e in exprs]) for ch, exprs in raw.items()}
    except (ValueError, grammar.FilterError) as exc:
        raise SettingsError(f"CITEWISE_SLACK_CHANNEL_FILTERS: {exc}; "
                            'write {"C0123": ["source = handbook"]}') from None


RETRY_WINDOW = "1 day"  # Slack retries within minutes; claims older than this are pruned as new ones arrive


def claim_event(services: Services, event_id: str | None) -> bool:
    """True the first time an event id is seen (retries and duplicates get False)."""
    if not event_id:
        return True
    with services.pool.connection() as conn:
        conn.execute(f"DELETE FROM slack_events WHERE received_at < now() - interval '{RETRY_WINDOW}'")
        return conn.execute("INSERT INTO slack_events (event_id) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1",
                            (event_id,)).fetchone() is not None


class _Updater:
    """Streams tokens into the placeholder message, at most one ``chat.update`` per interval."""

    def __init__(self, client: WebClient, channel: str, ts: str, interval: float) -> None:
        self.client, self.channel, self.ts, self.interval = client, channel, ts, interval
        self.text, self.last = "", time.monotonic()

    def __call__(self, token: str) -> None:
        self.text += token
        if time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            self.client.chat_update(channel=self.channel, ts=self.ts, text=escape(self.text) + " …")


def _refusal(exc: Rejected) -> str:
    if exc.status == 503:
        return f"I am answering many questions right now ({escape(str(exc))}); please ask again in a minute."
    return f"Sorry, I cannot take that: {escape(str(exc))}"


def answer_event(desk: FrontDesk, client: WebClient, event: dict[str, Any],
                 filters_by_channel: dict[str, list[grammar.Filter]]) -> None:
    cfg = desk.services.settings.slack
    channel, user = event["channel"], event.get("user")
    thread_ts = event.get("thread_ts") or event["ts"]
    if cfg.allowed_users and user not in cfg.allowed_users:
        client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                text="Sorry, you are not on the list of people who may ask citewise here; an admin "
                                     "can add you to CITEWISE_SLACK_ALLOWED_USERS.")
        return
    text = _MENTION.sub("", event.get("text") or "").strip()
    if not text:
        client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                text="Ask me a question about our documents, for example: _How do I ingest PDFs?_")
        return
    request = AskRequest(text=text, channel="slack", user_id=user, conversation_id=f"slack:{channel}:{thread_ts}",
                         filters=tuple(filters_by_channel.get(channel, filters_by_channel.get("*", []))))
    try:
        question = desk.receive(request)
    except Rejected as exc:
        client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=_refusal(exc))
        return
    placeholder = client.chat_postMessage(channel=channel, thread_ts=thread_ts, text="Searching…")
    ts = placeholder["ts"]
    try:
        answer = desk.answer(replace(question, client_ref=f"{channel}:{ts}"),
                             _Updater(client, channel, ts, cfg.update_interval_s),
                             on_position=lambda ahead: client.chat_update(channel=channel, ts=ts,
                                                                          text=Queued(ahead).text))
    except Rejected as exc:
        client.chat_update(channel=channel, ts=ts, text=_refusal(exc))
        return
    except Exception as exc:  # the turn is recorded as failed; the user gets a short reason, not silence
        client.chat_update(channel=channel, ts=ts, text=f":x: Sorry, I could not answer that: {escape(str(exc))[:300]}")
        return
    client.chat_update(channel=channel, ts=ts, text=fallback_text(answer), blocks=answer_blocks(answer))


def build(desk: FrontDesk, client: WebClient | None = None) -> App:
    services = desk.services
    cfg = services.settings.slack
    by_channel = channel_filters(cfg)
    client = client or WebClient(token=cfg.bot_token, base_url=cfg.api_url or WebClient.BASE_URL)
    if not cfg.signing_secret and not cfg.app_token and not cfg.insecure_local_test:
        raise SettingsError("SLACK_SIGNING_SECRET is not set: Slack's HTTP events cannot be verified, so anyone could "
                            "post them. Set it (Slack app → Basic Information → Signing Secret), or use Socket Mode "
                            "(SLACK_APP_TOKEN); CITEWISE_SLACK_INSECURE_LOCAL_TEST=1 skips the check for local "
                            "tests only")
    app = App(client=client, signing_secret=cfg.signing_secret or "unset", token_verification_enabled=False,
              request_verification_enabled=bool(cfg.signing_secret))
    def on_event(body: dict, event: dict, client: WebClient) -> None:
        if claim_event(services, body.get("event_id")):
            answer_event(desk, client, event, by_channel)

    @app.event("app_mention")
    def mention(body, event, client) -> None:
        on_event(body, event, client)

    @app.event("message")
    def direct(body, event, client) -> None:
        if event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id"):
            on_event(body, event, client)

    def thumb(body, value: str) -> int:
        """Committed (through the desk's rule: the asker or an admin) before the click is acknowledged."""
        return desk.rate(Rating(turn_id=body["actions"][0]["value"], value=value, user_id=body["user"]["id"],
                                channel="slack"))

    @app.action("feedback_up")
    def thumbs_up(ack, body, respond) -> None:
        try:
            thumb(body, "up")
        except Rejected as exc:
            ack()
            respond(text=f"Not recorded: {exc}", response_type="ephemeral", replace_original=False)
            return
        ack()
        respond(text="Thanks, your 👍 is recorded.", response_type="ephemeral", replace_original=False)

    @app.action("feedback_down")
    def thumbs_down(ack, body, client, respond) -> None:
        turn = body["actions"][0]["value"]
        try:
            fid = thumb(body, "down")
        except Rejected as exc:
            ack()
            respond(text=f"Not recorded: {exc}", response_type="ephemeral", replace_original=False)
            return
        with services.pool.connection() as conn:
            sources = cited_sources(conn, turn)
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=feedback_modal(turn, fid, sources))

    @app.view("feedback_modal")
    def modal(ack, body, view) -> None:
        meta = json.loads(view["private_metadata"])
        values = view["state"]["values"]
        comment = ((values.get("comment") or {}).get("text") or {}).get("value")
        chosen = ((values.get("citation") or {}).get("number") or {}).get("selected_option")
        try:
            desk.annotate(int(meta["feedback_id"]), comment, int(chosen["value"]) if chosen else None,
                          body["user"]["id"])
        except Rejected as exc:
            ack(response_action="errors", errors={"comment": str(exc)})
            return
        ack()

    return app


def mount(app: FastAPI, bolt: App, path: str = "/slack/events") -> None:
    """Slack's Events and Interactivity URL on the shared server (signature checked by Bolt: 401 when bad)."""

    @app.post(path, include_in_schema=False)
    async def slack_events(request: Request):
        bolt_request = to_bolt_request(request, await request.body())
        return to_starlette_response(await asyncio.to_thread(bolt.dispatch, bolt_request))
