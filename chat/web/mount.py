"""What the web UI's handlers need, installed once by the server process before Chainlit loads ``chat/app.py``.

Chainlit imports the app module itself, so the handlers cannot take arguments; they read this context instead.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chat.desk.frontdesk import FrontDesk
    from chat.web.auth import Logins
    from chat.web.datalayer import CitewiseDataLayer

_current: WebContext | None = None
# The signed-in user of the HTTP request being served, set by the server for Chainlit's REST routes (feedback):
# Chainlit calls its data layer without saying who is asking, and the desk must know who rates a turn.
REQUEST_USER: ContextVar[str | None] = ContextVar("citewise_request_user", default=None)


@dataclass(frozen=True)
class WebContext:
    desk: FrontDesk
    logins: Logins
    data_layer: CitewiseDataLayer


def install(ctx: WebContext) -> None:
    global _current
    _current = ctx


def current() -> WebContext:
    if _current is None:
        raise RuntimeError("the web UI runs inside `citewise serve`, which opens the database and models first")
    return _current
