"""What the web UI's handlers need, installed once by the server process before Chainlit loads ``chat/app.py``.

Chainlit imports the app module itself, so the handlers cannot take arguments; they read this context instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chat.datalayer import CitewiseDataLayer
    from chat.frontdesk import FrontDesk
    from chat.web_auth import Logins

_current: WebContext | None = None


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
