"""The ``citewise`` console script: composes the sub-commands each package offers."""

from __future__ import annotations

import typer

from chat import cli as chat_cli
from evals.cli import debug_app, eval_app
from retrieval import admin_cli
from retrieval import cli as retrieval_cli

app = typer.Typer(help="citewise: answers from your own documents, every claim cited.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
app.command()(retrieval_cli.ingest)
app.command()(retrieval_cli.search)
app.command()(retrieval_cli.delete)
app.command()(retrieval_cli.reindex)
app.command()(chat_cli.ask)
app.command()(chat_cli.chat)
app.command()(chat_cli.serve)
app.command()(chat_cli.slack)
chat_cli.feedback_app.command("add")(chat_cli.feedback)
chat_cli.feedback_app.command("list")(chat_cli.feedback_list)
chat_cli.feedback_app.command("export")(chat_cli.feedback_export)
chat_cli.feedback_app.command("report")(chat_cli.feedback_report)
app.add_typer(chat_cli.feedback_app, name="feedback")
app.add_typer(retrieval_cli.db_app, name="db")
app.add_typer(chat_cli.llm_app, name="llm")
app.add_typer(eval_app, name="eval")
app.add_typer(admin_cli.users_app, name="users")
app.add_typer(admin_cli.hold_app, name="hold")
app.command()(admin_cli.forget)
app.command()(admin_cli.retention)
app.add_typer(debug_app, name="debug")

if __name__ == "__main__":
    app()
