"""``citewise ask``, ``chat``, ``feedback`` and ``llm`` sub-commands."""

from __future__ import annotations

import uuid

import typer

from chat.engine.services import open_or_exit
from core.cli import console, emit_json, fail, out, settings

llm_app = typer.Typer(help="The local LLM server: status, start, stop.", no_args_is_help=True)


def _checked(cfg, request, desk=None):
    """The desk's question (or, before services are open, the desk's own validation), or exit 2 with why not."""
    from chat.desk.frontdesk import Rejected, validate

    try:
        return desk.receive(request) if desk else validate(request, cfg)
    except Rejected as exc:
        fail(str(exc))


class _Stream:
    """Prints the answer as its verified sentences arrive (what streams is the final answer)."""

    def __call__(self, piece: str) -> None:
        out.print(piece, end="", markup=False, highlight=False)

    def settle(self, answer) -> None:
        out.print()


def _print_sources(answer) -> None:
    listed = answer.citations if answer.citations else answer.sources
    if not listed:
        return
    out.print("\n[bold]Sources[/bold]" if answer.citations else "\n[bold]Closest sources[/bold]")
    for c in listed:
        where = f"{c.uri}" + (f" (chars {c.start}-{c.end})" if c.end else "")
        out.print(f"  [{c.number}] {c.title} — {c.source} · {where}")
        if c.withheld:
            out.print(f"      [yellow]⚠ {c.withheld} sentence(s) addressed to the assistant were withheld[/yellow]")


def ask(
    question: str = typer.Argument(..., help="Your question."),
    filter: list[str] = typer.Option([], "--filter", help="FIELD OP VALUE; repeatable (see `citewise search`)."),
    preset_name: str | None = typer.Option(None, "--preset", help="precise, balanced or creative "
                                           "(default CITEWISE_PRESET, else precise)."),
    temperature: float | None = typer.Option(None, help="0..2 (overrides the preset)."),
    top_p: float | None = typer.Option(None, "--top-p", help="(0, 1]"),
    top_k: int | None = typer.Option(None, "--top-k", help="1..200"),
    seed: int | None = typer.Option(None, help="Seed for reproducible sampling."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="16..4096"),
    conversation: str | None = typer.Option(None, help="Continue this conversation id."),
    as_json: bool = typer.Option(False, "--json", help="Print answer, citations, abstained and turn_id as JSON."),
) -> None:
    """Answer a question from the corpus, streaming, with numbered sources."""
    from chat.desk.frontdesk import AskRequest, FrontDesk
    from chat.engine.llm import LLMError

    cfg = settings()
    request = AskRequest(text=question, channel="cli", user_id=cfg.user, conversation_id=conversation,
                         filters=tuple(filter), preset=preset_name, temperature=temperature, top_p=top_p, top_k=top_k,
                         max_tokens=max_tokens, seed=seed, operator=cfg.user is None)
    _checked(cfg, request)  # bad input fails before the models load
    services = open_or_exit(cfg)
    desk = FrontDesk(services)
    try:
        prepared = _checked(cfg, request, desk)
        stream = _Stream()
        try:
            answer = desk.answer(prepared, None if as_json else stream)
        except LLMError as exc:
            fail(str(exc))
    finally:
        services.close()
    _show(answer, stream, as_json)


def _show(answer, stream: _Stream, as_json: bool) -> None:
    if as_json:
        emit_json(answer.to_json())
        return
    stream.settle(answer)
    if answer.abstained:
        out.print("[yellow](no answer in the sources)[/yellow]")
    _print_sources(answer)
    out.print(f"[dim]turn {answer.turn_id} · `citewise feedback {answer.turn_id} up|down`[/dim]")


def chat(
    preset_name: str | None = typer.Option(None, "--preset", help="precise, balanced or creative "
                                           "(default CITEWISE_PRESET, else precise)."),
    filter: list[str] = typer.Option([], "--filter", help="FIELD OP VALUE; repeatable."),
) -> None:
    """A terminal conversation with history (empty line or Ctrl-D to quit)."""
    from chat.desk.frontdesk import AskRequest, FrontDesk, Rejected
    from chat.engine.llm import LLMError

    cfg = settings()
    conversation = str(uuid.uuid4())
    _checked(cfg, AskRequest(text="?", channel="cli", user_id=cfg.user, conversation_id=conversation,
                             filters=tuple(filter), preset=preset_name))  # before models load
    services = open_or_exit(cfg)
    desk = FrontDesk(services)
    out.print(f"[dim]conversation {conversation} — ask away; an empty line quits.[/dim]")
    try:
        while True:
            try:
                text = input("\nyou> ").strip()
            except EOFError:
                break
            if not text:
                break
            out.print("citewise> ", end="")
            stream = _Stream()
            try:
                answer = desk.ask(AskRequest(text=text, channel="cli", user_id=cfg.user, conversation_id=conversation,
                                             filters=tuple(filter), preset=preset_name, operator=cfg.user is None),
                                  stream)
            except (Rejected, LLMError) as exc:
                console.print(f"\n[red]error:[/red] {exc}")
                continue
            stream.settle(answer)
            _print_sources(answer)
    finally:
        services.close()


def serve(
    host: str | None = typer.Option(None, help="Interface to listen on (default CITEWISE_HOST, else 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default CITEWISE_PORT, else 8000)."),
) -> None:
    """Serve the web UI (and API) on one port, on the embedded database and the local LLM by default."""
    import os
    import sys

    from chat.server import UI_PATH, chainlit_env, environment_ready
    from chat.server import serve as run_server
    from chat.web.auth import logins
    from core.settings import SettingsError

    cfg = settings()
    try:
        who = logins(cfg)
        if not environment_ready(cfg, os.environ):  # hand Chainlit its environment: once, before it is imported
            env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | chainlit_env(cfg)
            os.execve(sys.executable, [sys.executable, "-m", "citewise.cli", *sys.argv[1:]], env)
    except SettingsError as exc:
        fail(str(exc))
    # answers hold a connection each: the API/web gate and the Slack slots allow max_concurrent_answers each,
    # plus room for feedback, health, settings panels and Slack event claims
    services = open_or_exit(cfg, pool_size=2 * cfg.desk.max_concurrent_answers + 6)
    if cfg.retention_days:
        from core.privacy import apply_retention

        with services.pool.connection() as conn:
            done = apply_retention(conn, cfg.retention_days)
        out.print(f"retention {cfg.retention_days} days: {done.turns} old turns deleted")
    host, port = host or cfg.web.host, port or cfg.web.port
    out.print(f"citewise is serving at [bold]http://{host}:{port}{UI_PATH}/[/bold]")
    if who.demo:
        out.print(f"log in as [bold]demo[/bold] with password [bold]{who.passwords['demo']}[/bold] "
                  f"(kept in {cfg.home / 'web' / 'demo-password'}; set CITEWISE_WEB_USERS for real users)")
    else:
        out.print(f"users: {', '.join(sorted(who.passwords))} (from CITEWISE_WEB_USERS)")
    from retrieval.queue import start_background_worker

    if start_background_worker(services.pool.conninfo, cfg, services.embedder):
        out.print("source syncs and queued ingests run in this process (no other worker is alive)")
    try:
        run_server(services, host, port, os.environ)
    except SettingsError as exc:
        fail(str(exc))
    finally:
        services.close()


def slack(
    port: int | None = typer.Option(None, help="Port for Slack's HTTP events (default CITEWISE_PORT, else 8000)."),
) -> None:
    """Run the Slack bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP events at /slack/events."""
    from fastapi import FastAPI

    from chat.slack import bot as slack_bot
    from core.settings import SettingsError

    cfg = settings()
    if not cfg.slack.bot_token or not (cfg.slack.signing_secret or cfg.slack.app_token):
        fail("set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (HTTP events) or SLACK_APP_TOKEN (Socket Mode)")
    services = open_or_exit(cfg)
    try:
        from chat.desk.frontdesk import FrontDesk

        bolt = slack_bot.build(FrontDesk(services))
    except SettingsError as exc:
        fail(str(exc))
    try:
        if cfg.slack.app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            out.print("citewise Slack bot connected in Socket Mode")
            SocketModeHandler(bolt, cfg.slack.app_token).start()
            return
        import uvicorn

        app = FastAPI(title="citewise Slack events")
        slack_bot.mount(app, bolt)
        out.print(f"citewise Slack events at http://{cfg.web.host}:{port or cfg.web.port}/slack/events")
        uvicorn.run(app, host=cfg.web.host, port=port or cfg.web.port, log_level="warning")
    finally:
        services.close()


@llm_app.command("status")
def llm_status() -> None:
    """Whether the local LLM server runs (or which endpoint is configured)."""
    from chat.engine.llm import running_server

    cfg = settings()
    if cfg.llm.base_url:
        out.print(f"configured endpoint: {cfg.llm.base_url} (model {cfg.llm.model or 'default'})")
        return
    url = running_server(cfg.llm)
    out.print(f"local server running at {url}" if url else "local server not running (starts on first question)")


@llm_app.command("start")
def llm_start() -> None:
    """Start the local LLM server (assembling the model on first use)."""
    from chat.engine.llm import LLMError, start_server

    cfg = settings()
    try:
        with console.status("Starting the local LLM server…"):
            url = start_server(cfg.llm)
    except LLMError as exc:
        fail(str(exc))
    out.print(f"local server running at {url}")


@llm_app.command("serve")
def llm_serve(host: str = typer.Option("0.0.0.0", help="Address to listen on."),
              port: int = typer.Option(8080, min=1, max=65535)) -> None:
    """Run the bundled model's llama.cpp server in the foreground (the compose deployment's LLM service)."""
    import os

    from chat.engine.llm import assemble_model, server_command

    cfg = settings()
    model = assemble_model(cfg.llm.models_dir)
    command = server_command(cfg.llm, model, host, port)
    out.print(f"Serving {model.name} at http://{host}:{port}/v1")
    os.execv(command[0], command)


@llm_app.command("stop")
def llm_stop() -> None:
    """Stop the local LLM server."""
    from chat.engine.llm import stop_server

    out.print("Stopped." if stop_server(settings().llm) else "Not running.")
