"""The Chainlit web UI. It only orchestrates: the chain answers, the settings module turns the panel into choices,
the render module formats, the data layer persists. Loaded by Chainlit inside ``citewise serve``."""

from __future__ import annotations

import asyncio

import chainlit as cl
from chainlit.types import ThreadDict

from chat import web
from chat.render_web import answer_markdown, chip, source_page
from chat.streaming import Busy, Token, stream_answer
from chat.types import Question
from chat.web_settings import Choices, PanelError, apply, defaults, widgets
from retrieval import store

_CHOICES = "choices"


@cl.data_layer
def _data_layer():
    return web.current().data_layer


@cl.password_auth_callback
def _password_login(username: str, password: str) -> cl.User | None:
    if web.current().logins.check(username, password):
        return cl.User(identifier=username, metadata={"provider": "password"})
    return None


if web.current().logins.header:
    @cl.header_auth_callback
    def _header_login(headers) -> cl.User | None:
        name = headers.get(web.current().logins.header or "")
        return cl.User(identifier=name, metadata={"provider": "header"}) if name else None


async def _source_names() -> list[str]:
    def read() -> list[str]:
        with web.current().services.pool.connection() as conn:
            return store.source_names(conn)
    return await asyncio.to_thread(read)


async def _show_panel(values: dict) -> None:
    await cl.ChatSettings(widgets(values, await _source_names())).send()


async def _start(values: dict) -> None:
    cfg = web.current().services.settings
    try:
        choices = apply(values, defaults(cfg.answer.preset, cfg.answer.sources))
    except PanelError:
        choices = apply({}, defaults(cfg.answer.preset, cfg.answer.sources))
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
        choices = apply(values, previous.values)
    except PanelError as exc:
        await cl.ErrorMessage(content=f"Settings not applied: {exc}").send()
        return
    cl.user_session.set(_CHOICES, choices)
    if choices.values["preset"] != previous.values["preset"]:
        await _show_panel(choices.values)  # the sliders jump to the new preset's values
    await web.current().data_layer.update_thread(cl.context.session.thread_id, metadata={"settings": choices.values})


@cl.on_message
async def _on_message(message: cl.Message) -> None:
    ctx = web.current()
    limit = ctx.services.settings.api.max_question_chars
    if len(message.content) > limit:
        await cl.ErrorMessage(content=f"That question is {len(message.content)} characters; the limit is {limit}. "
                                      "Shorten it, or ask an admin to raise CITEWISE_MAX_QUESTION_CHARS.").send()
        return
    choices: Choices = cl.user_session.get(_CHOICES)
    user = cl.user_session.get("user")
    reply = cl.Message(content="")
    question = Question(text=message.content, conversation_id=cl.context.session.thread_id, channel="web",
                        user_id=user.identifier if user else None, filters=choices.filters,
                        sampling=choices.sampling, sources=choices.sources, client_ref=reply.parent_id)
    answer = None
    try:
        async for item in stream_answer(ctx.services, question, ctx.gate):
            if isinstance(item, Token):
                await reply.stream_token(item.text)
            else:
                answer = item.answer
    except Busy as exc:
        reply.content = f"**Too many questions at once right now.** {exc}"
        await reply.update()
        return
    except Exception as exc:  # the chain recorded the turn as failed; the user gets the reason
        reply.content = f"**The answer failed:** {exc}"
        await reply.update()
        return
    assert answer is not None
    text, listed = answer_markdown(answer)
    reply.content = text
    reply.elements = [cl.Text(name=chip(c.number), content=source_page(c, answer.text), display="side")
                      for c in listed]
    await ctx.data_layer.link_sources({e.id: c.document_id for e, c in zip(reply.elements, listed, strict=True)})
    await reply.update()
