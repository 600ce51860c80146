"""One HTTP server for citewise: the Chainlit UI under /chat, the JSON and OpenAI-compatible API under /v1,
and Slack's events at /slack/events when Slack is configured.

Chainlit reads its configuration directory and environment when first imported, so :func:`create_app` prepares
both (an app root under ``$CITEWISE_HOME/web`` with the committed config, the session-signing secret) before any
Chainlit import.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse

from chat.chain import Services
from chat.web_auth import auth_secret, logins

UI_PATH = "/chat"
_HERE = Path(__file__).parent


def _app_root(services: Services) -> Path:
    root = services.settings.home / "web"
    (root / ".chainlit").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_HERE / "chainlit" / "config.toml", root / ".chainlit" / "config.toml")
    shutil.copyfile(_HERE / "chainlit" / "chainlit.md", root / "chainlit.md")
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


def create_app(services: Services) -> FastAPI:
    """The ASGI app serving the UI (and, as they are added, the API and Slack events)."""
    settings = services.settings
    os.environ["CHAINLIT_APP_ROOT"] = str(_app_root(services))
    os.environ["CHAINLIT_AUTH_SECRET"] = auth_secret(settings)
    os.environ.pop("DATABASE_URL", None)  # would switch on Chainlit's own data layer (see docs/architecture.md)
    from chainlit.utils import mount_chainlit

    from chat import api, openai_api, web
    from chat.api import parse_tokens
    from chat.datalayer import CitewiseDataLayer
    from chat.streaming import Gate

    layer = CitewiseDataLayer(services.pool.conninfo)

    gate = Gate(settings.api.max_concurrent_answers, settings.api.max_queued_answers)
    web.install(web.WebContext(services, logins(settings), layer, gate))
    app = FastAPI(title="citewise", summary="Answers from your documents, every claim cited.")
    app.state.services = services
    app.state.gate = gate
    app.state.api_tokens = parse_tokens(settings.api.tokens)
    app.include_router(api.router)
    app.include_router(openai_api.router)
    if settings.slack.enabled and not settings.slack.app_token:
        from chat import slack_bot

        slack_bot.mount(app, slack_bot.build(services))

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

    mount_chainlit(app=app, target=str(_HERE / "app.py"), path=UI_PATH)
    return app


def serve(services: Services, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(services), host=host, port=port, log_level="warning", proxy_headers=False)
