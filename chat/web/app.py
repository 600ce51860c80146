"""The Chainlit web UI. It only orchestrates: the chain answers, the settings module turns the panel into choices,
the render module formats, the data layer persists. Loaded by Chainlit inside ``citewise serve``."""

from __future__ import annotations

import asyncio

import chainlit as cl
from chainlit.types import ThreadDict

from chat.desk.frontdesk import AskRequest, Queued, Rating, Rejected, Token
from chat.web import mount
from chat.web.panel import Choices, PanelError, apply, defaults, widgets
from chat.web.render import answer_markdown, chip, source_page, sources_markdown, welcome_markdown
from core import access
from retrieval import sources, store

_CHOICES = "choices"


@cl.data_layer
def _data_layer():
    return mount.current().data_layer


@cl.password_auth_callback
def _password_login(username: str, password: str) -> cl.User | None:
    if mount.current().logins.check(username, password):
        return cl.User(identifier=username, metadata={"provider": "password"})
    return None


if mount.current().logins.header:
    @cl.header_auth_callback
    def _header_login(headers) -> cl.User | None:
        name = headers.get(mount.current().logins.header or "")
        return cl.User(identifier=name, metadata={"provider": "header"}) if name else None


@cl.set_chat_profiles
async def _profiles(user: cl.User | None) -> list[cl.ChatProfile]:
    """One profile, so the welcome screen shows citewise's logo and what this reader can ask about."""
    def read() -> str:
        desk = mount.current().desk
        scope = desk.scope_of(user.identifier if user else None)
        with desk.services.pool.connection() as conn:
            text = welcome_markdown(store.corpus_summary(conn, scope))
            if user and access.resolve(conn, user.identifier).admin:
                text += sources_markdown(sources.listing(conn))
            return text
    return [cl.ChatProfile(name="citewise", markdown_description=await asyncio.to_thread(read),
                           icon="/public/favicon.svg", default=True)]


async def _source_names() -> list[str]:
    def read() -> list[str]:
        with mount.current().desk.services.pool.connection() as conn:
            return store.source_names(conn)
    return await asyncio.to_thread(read)


async def _show_panel(values: dict) -> None:
    most = mount.current().desk.services.settings.desk.max_sources
    await cl.ChatSettings(widgets(values, await _source_names(), most)).send()


async def _start(values: dict) -> None:
    cfg = mount.current().desk.services.settings
    try:
        choices = apply(values, defaults(cfg.answer.preset, cfg.answer.sources), cfg.desk.max_sources)
    except PanelError:
        choices = apply({}, defaults(cfg.answer.preset, cfg.answer.sources), cfg.desk.max_sources)
    cl.user_session.set(_CHOICES, choices)
    await _show_panel(choices.values)


@cl.on_chat_start
async def _on_start() -> None:
    await _start({})


@cl.on_chat_resume
async def _on_resume(thread: ThreadDict) -> None:
    await _start((thread.get("metadata") or {}).get("settings") or {})


@cl.on_settings_update
async def _on_settings(values: dict) -> None:
    previous: Choices = cl.user_session.get(_CHOICES)
    try:
        choices = apply(values, previous.values, mount.current().desk.services.settings.desk.max_sources)
    except PanelError as exc:
        await cl.ErrorMessage(content=f"Settings not applied: {exc}").send()
        return
    cl.user_session.set(_CHOICES, choices)
    if choices.values["preset"] != previous.values["preset"]:
        await _show_panel(choices.values)  # the sliders jump to the new preset's values
    await mount.current().data_layer.update_thread(cl.context.session.thread_id, metadata={"settings": choices.values})


async def _say(reply: cl.Message, text: str, streamed: bool) -> None:
    """Show ``text`` as the reply: replacing what streamed, or as a new message when nothing did."""
    reply.content = text
    await (reply.update() if streamed else reply.send())


RATE_SOURCE = "rate_source"


def _rating_buttons(turn_id: str | None, listed: list) -> list[cl.Action]:
    """A 👍/👎 pair per cited source: "this passage was / was not what I needed" (what ``citewise learn`` learns
    from). Under the answer, beside its Sources list: Chainlit links a side-panel element to its chip by name, so
    the panel itself cannot hold buttons without losing that link."""
    if turn_id is None:
        return []
    return [cl.Action(name=RATE_SOURCE, payload={"turn": turn_id, "number": c.number, "value": value},
                      label=f"{'👍' if value > 0 else '👎'} [{c.number}]",
                      tooltip=f"[{c.number}] {'was' if value > 0 else 'was not'} what I needed")
            for c in listed for value in (1, -1)]


@cl.action_callback(RATE_SOURCE)
async def _on_rate_source(action: cl.Action) -> None:
    user = cl.user_session.get("user")
    thread = cl.context.session.thread_id
    number, value = int(action.payload["number"]), int(action.payload["value"])

    rating = Rating(turn_id=str(action.payload["turn"]), value=value, user_id=user.identifier if user else None,
                    channel="web", citation=number, source_only=True, conversation_id=thread)
    try:
        await asyncio.to_thread(mount.current().desk.rate, rating)
    except Rejected as exc:
        await cl.context.emitter.send_toast(f"Rating not stored: {exc}", "error")
        return
    verdict = "was what you needed" if value > 0 else "was not what you needed"
    await cl.context.emitter.send_toast(f"Thanks: source [{number}] {verdict}.", "success")


@cl.on_message
async def _on_message(message: cl.Message) -> None:
    ctx = mount.current()
    choices: Choices = cl.user_session.get(_CHOICES)
    user = cl.user_session.get("user")
    reply = cl.Message(content="")
    chosen = choices.sampling
    request = AskRequest(text=message.content, channel="web", user_id=user.identifier if user else None,
                         conversation_id=cl.context.session.thread_id, filters=tuple(choices.filters),
                         preset=choices.values["preset"], temperature=chosen.temperature, top_p=chosen.top_p,
                         top_k=chosen.top_k, sources=choices.sources, client_ref=reply.parent_id)
    answer, streamed, waited = None, False, False
    try:
        question = await asyncio.to_thread(ctx.desk.receive, request)
        async for item in ctx.desk.stream(question):
            if isinstance(item, Queued):  # the wait notice, replaced by the answer's first sentence
                waited = True
                await reply.stream_token(item.text, is_sequence=True)
            elif isinstance(item, Token):
                await reply.stream_token(item.text, is_sequence=waited and not streamed)
                streamed = True
            else:
                answer = item.answer
    except Rejected as exc:
        title = "Too many questions at once right now." if exc.status == 503 else "That question cannot be asked:"
        await _say(reply, f"**{title}** {exc}", streamed)
        return
    except Exception as exc:  # the chain recorded the turn as failed; the user gets the reason
        await _say(reply, f"**The answer failed:** {exc}", streamed)
        return
    assert answer is not None
    text, listed = answer_markdown(answer)
    reply.content = text
    reply.elements = [cl.Text(name=chip(c.number), content=source_page(c, answer.text), display="side")
                      for c in listed]
    if not answer.abstained:
        reply.actions = _rating_buttons(answer.turn_id, listed)
    await ctx.data_layer.link_sources({e.id: c.document_id for e, c in zip(reply.elements, listed, strict=True)})
    await reply.update()
