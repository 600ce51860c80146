"""The ``citewise`` console script: composes the sub-commands each package offers."""

from __future__ import annotations

import os

import typer

from chat import cli as chat_cli
from chat.feedback import cli as feedback_cli
from chat.slack import source as _slack_source  # noqa: F401 (registers Slack channels as a kind of source)
from core import admin_cli
from core import cli as core_cli
from evals.cli import eval_app
from retrieval import cli as retrieval_cli
from retrieval.cli import debug_app
from retrieval.sources_cli import sources_app

_LIBRARY_ENV = {
    "HF_HUB_OFFLINE": "1",  # the embedding model ships in a package: never ask the Hugging Face hub
    "TOKENIZERS_PARALLELISM": "false",  # ingest forks a parse sandbox; forked tokenizer threads would deadlock
    "TRANSFORMERS_VERBOSITY": "error",
}

app = typer.Typer(help="citewise: answers from your own documents, every claim cited.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
app.command()(retrieval_cli.ingest)
app.command()(retrieval_cli.worker)
app.command()(retrieval_cli.search)
app.command()(retrieval_cli.delete)
app.command()(retrieval_cli.reindex)
app.command()(chat_cli.ask)
app.command()(chat_cli.chat)
app.command()(chat_cli.serve)
app.command()(chat_cli.slack)
feedback_cli.feedback_app.command("add")(feedback_cli.feedback)
feedback_cli.feedback_app.command("list")(feedback_cli.feedback_list)
feedback_cli.feedback_app.command("export")(feedback_cli.feedback_export)
feedback_cli.feedback_app.command("report")(feedback_cli.feedback_report)
app.add_typer(feedback_cli.feedback_app, name="feedback")
app.add_typer(core_cli.db_app, name="db")
app.command("config")(core_cli.config)
app.add_typer(chat_cli.llm_app, name="llm")
app.add_typer(eval_app, name="eval")
app.command("learn")(feedback_cli.learn)
app.add_typer(admin_cli.users_app, name="users")
app.add_typer(admin_cli.hold_app, name="hold")
app.add_typer(sources_app, name="sources")
app.command()(admin_cli.forget)
app.command()(admin_cli.retention)
app.command()(admin_cli.backup)
app.command()(admin_cli.restore)
app.add_typer(debug_app, name="debug")

def main() -> None:
    """The console script. Third-party libraries take a few switches only from the environment; they are set
    here, once, before anything imports those libraries, and never changed while citewise runs."""
    for name, value in _LIBRARY_ENV.items():
        os.environ.setdefault(name, value)
    app()


if __name__ == "__main__":
    main()
