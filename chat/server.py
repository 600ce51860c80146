"""One HTTP server for citewise: the Chainlit UI under /chat, the JSON and OpenAI-compatible API under /v1,
and Slack's events at /slack/events when Slack is configured.

Chainlit reads its configuration directory and signing secret from the environment when first imported. Rather
than write ``os.environ`` at run time, ``citewise serve`` re-executes its process with :func:`chainlit_env` added
(an app root under ``$CITEWISE_HOME/web`` holding the committed config, the session-signing secret, and no
``DATABASE_URL``, which would switch on Chainlit's own data layer); :func:`create_app` checks that it was.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse

from chat.engine.services import Services
from chat.web.auth import auth_secret, logins
from core.settings import Settings, SettingsError

UI_PATH = "/chat"
_WEB = Path(__file__).parent / "web"  # the web door: its Chainlit app and assets


def _app_root(settings: Settings) -> Path:
    root = settings.home / "web"
    (root / ".chainlit").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_WEB / "chainlit" / "config.toml", root / ".chainlit" / "config.toml")
    shutil.copyfile(_WEB / "chainlit" / "chainlit.md", root / "chainlit.md")
    shutil.copytree(_WEB / "chainlit" / "public", root / "public", dirs_exist_ok=True)  # logo, favicon
    return root


def _ui_user(request: Request) -> str:
    from chainlit.auth.cookie import get_token_from_cookies
    from chainlit.auth.jwt import decode_jwt

    token = get_token_from_cookies(dict(request.cookies))
    if not token:
        raise HTTPException(401, "log in to the web UI first")
    try:
        return decode_jwt(token).identifier
    except Exception:
        raise HTTPException(401, "your session has expired; log in again") from None


def chainlit_env(settings: Settings) -> dict[str, str]:
    """What Chainlit must find in the environment when it is imported (the app root is prepared here)."""
    return {"CHAINLIT_APP_ROOT": str(_app_root(settings)), "CHAINLIT_AUTH_SECRET": auth_secret(settings)}


def environment_ready(settings: Settings, environ: Mapping[str, str]) -> bool:
    wanted = chainlit_env(settings)
    return all(environ.get(k) == v for k, v in wanted.items()) and "DATABASE_URL" not in environ


def _quiet_chainlit() -> None:
    """Keep two Chainlit notices out of the server's console (a user should see citewise's messages): a warning
    on every page that no translated chainlit.md exists (it is empty on purpose: no readme link), and the
    RuntimeWarning of Chainlit 2.12's session config, which calls our async chat-profile hook from a running
    event loop, fails, and falls back to the global config (what we want; the profile has no overrides)."""
    class _NoTranslatedReadme(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Translated markdown file" not in record.getMessage()

    logging.getLogger("chainlit").addFilter(_NoTranslatedReadme())
    warnings.filterwarnings("ignore", message="coroutine '_profiles' was never awaited", category=RuntimeWarning)


def create_app(services: Services, environ: Mapping[str, str]) -> FastAPI:
    """The ASGI app serving the UI, the JSON and OpenAI-compatible API and Slack's events."""
    settings = services.settings
    if not environment_ready(settings, environ):
        raise SettingsError("the web server must be started by `citewise serve` (Chainlit reads its configuration "
                            "from the environment that command prepares)")
    from chainlit.utils import mount_chainlit

    _quiet_chainlit()

    from chat import telemetry
    from chat.api import openai_compat, routes
    from chat.api.routes import parse_tokens
    from chat.api.schema import database_lost, validation_error
    from chat.desk.frontdesk import DATABASE_ERRORS, FrontDesk
    from chat.web import mount
    from chat.web.datalayer import CitewiseDataLayer

    layer = CitewiseDataLayer(services.pool.conninfo)
    desk = FrontDesk(services)  # one desk, and so one admission gate, for the web UI, the API and Slack
    mount.install(mount.WebContext(desk, logins(settings), layer))
    app = FastAPI(title="citewise", summary="Answers from your documents, every claim cited.",
                  exception_handlers={RequestValidationError: validation_error,
                                      **dict.fromkeys(DATABASE_ERRORS, database_lost)})
    app.state.desk = desk
    app.state.api_tokens = parse_tokens(settings.api.tokens)
    app.include_router(routes.router)
    app.include_router(openai_compat.router)
    telemetry.instrument(app, services.pool)
    if settings.slack.enabled and not settings.slack.app_token:
        from chat.slack import bot as slack_bot

        slack_bot.mount(app, slack_bot.build(desk))

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse(f"{UI_PATH}/")

    @app.get("/v1/ui/elements/{element_id}", include_in_schema=False)
    async def element(element_id: str, request: Request) -> PlainTextResponse:
        """A stored source passage, for the UI's side panel when a thread is reopened; only its owner may read it."""
        row = await layer.element_for(element_id, _ui_user(request))
        if row is None or row["content"] is None:
            raise HTTPException(404, "no such source in your conversations")
        return PlainTextResponse(row["content"], media_type="text/plain; charset=utf-8")

    mount_chainlit(app=app, target=str(_WEB / "app.py"), path=UI_PATH)
    app.add_middleware(ClosedTabs)
    app.add_middleware(KnownUser)
    return app


class KnownUser:
    """Chainlit's feedback routes call the data layer without saying who is asking; this records the signed-in user
    of each UI request (from the session cookie) where the data layer can read it (chat.web.mount.REQUEST_USER), so
    the desk's rule, the asker or an admin rates a turn, holds in the web UI too. An unknown session rates nothing."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(f"{UI_PATH}/feedback"):
            await self.app(scope, receive, send)
            return
        from chat.web import mount

        try:
            user: str | None = _ui_user(Request(scope))
        except HTTPException:
            user = None
        token = mount.REQUEST_USER.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            mount.REQUEST_USER.reset(token)


class ClosedTabs:
    """Chainlit's routing middleware (a Starlette ``BaseHTTPMiddleware``) raises "No response returned." when the
    browser goes away before the UI route answers (a closed tab, a navigation). That is the reader leaving, not a
    server fault, so it is not logged as one; every other exception passes through unchanged."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.app(scope, receive, send)
        except RuntimeError as exc:
            if scope["type"] != "http" or str(exc) != "No response returned." or \
                    not scope["path"].startswith(UI_PATH):
                raise


def serve(services: Services, host: str, port: int, environ: Mapping[str, str]) -> None:
    import uvicorn

    uvicorn.run(create_app(services, environ), host=host, port=port, log_level="warning", proxy_headers=False)
