"""Every setting is documented, and ``citewise config`` shows what is in effect and where it came from."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path

import pytest

from core.settings import effective

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "core" / "settings.py"
READERS = {"str", "int", "float", "choice", "bool", "first"}


def read_names() -> set[str]:
    """Every variable name core/settings.py passes to an ``env.<reader>(...)`` call, found in its source."""
    names = set()
    for node in ast.walk(ast.parse(SETTINGS.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in READERS
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "env"):
            args = node.args if node.func.attr == "first" else node.args[:1]
            names |= {a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return names


def test_every_setting_the_reader_reads_is_documented() -> None:
    names = read_names()
    assert len(names) > 70, "the source parse found too few names; has the reader changed shape?"
    # no variable is read around Env: every upper-case name with an underscore in a string is one Env reads
    quoted = set(re.findall(r'"([A-Z][A-Z0-9]*_[A-Z0-9_]+)"', SETTINGS.read_text()))
    assert quoted <= names, f"read outside Env (so neither checked nor listed by citewise config): {quoted - names}"
    docs = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in docs)
    assert not missing, f"not documented in docs/configuration.md: {', '.join(missing)}"


def test_the_listing_is_every_variable_the_reader_reads() -> None:
    listed = [read.name for read in effective({"CITEWISE_HOME": "/tmp/citewise-config-test"})[1]]
    assert len(listed) == len(set(listed))
    assert set(listed) == read_names()


def test_keys_tokens_and_passwords_are_marked_secret() -> None:
    for read in effective({})[1]:
        looks_secret = (re.search(r"(_KEY|_TOKEN|_SECRET|PASSWORD)$", read.name)
                        or read.name in {"CITEWISE_API_TOKENS", "CITEWISE_WEB_USERS"})  # name:secret lists
        assert read.secret == bool(looks_secret), read.name


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """The real ``citewise`` console app, in-process, on an environment holding only what a test sets."""
    from typer.testing import CliRunner

    from citewise.cli import app

    for name in list(os.environ):
        if name.startswith(("CITEWISE_", "SLACK_", "CHAINLIT_AUTH")) or name in {"OPENAI_API_KEY", "XDG_DATA_HOME"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("CITEWISE_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    return lambda *args: CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_config_shows_each_value_and_where_it_came_from(cli, monkeypatch) -> None:
    monkeypatch.setenv("CITEWISE_SOURCES", "5")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret-token")
    monkeypatch.setenv("CITEWISE_DATABASE_URL", "postgresql://citewise:hunter2@db:5432/citewise")
    monkeypatch.setenv("CITEWISE_LLM_BASE_URL", "http://llm:8000/v1")
    result = cli("config", "--json")
    assert result.exit_code == 0, result.output
    assert "xoxb-very-secret-token" not in result.output and "hunter2" not in result.output
    listing = {row["name"]: row for row in json.loads(result.stdout)}
    assert listing["CITEWISE_SOURCES"]["value"] == 5 and listing["CITEWISE_SOURCES"]["source"] == "environment"
    assert listing["CITEWISE_SOURCES"]["default"] == 3 and listing["CITEWISE_SOURCES"]["allowed"] == "1..50"
    assert listing["CITEWISE_CONTEXT_TOKENS"] == {
        "name": "CITEWISE_CONTEXT_TOKENS", "value": 320, "source": "default", "default": 320, "kind": "integer",
        "allowed": "200..100000", "secret": False}
    assert listing["SLACK_BOT_TOKEN"]["value"] == "***" and listing["SLACK_BOT_TOKEN"]["secret"]
    assert listing["SLACK_APP_TOKEN"]["value"] is None and listing["SLACK_APP_TOKEN"]["source"] == "default"
    assert listing["CITEWISE_DATABASE_URL"]["value"] == "postgresql://citewise:***@db:5432/citewise"
    # a default that follows another setting: with an endpoint, answers run four at a time
    assert listing["CITEWISE_MAX_CONCURRENT_ANSWERS"]["value"] == 4
    assert set(listing) == read_names()

    text = cli("config")
    assert text.exit_code == 0
    lines = {line.split("=", 1)[0]: line for line in text.stdout.splitlines()}
    assert re.fullmatch(r"CITEWISE_SOURCES=5 +# environment \(default 3; 1\.\.50\)", lines["CITEWISE_SOURCES"])
    assert re.fullmatch(r"CITEWISE_CONTEXT_TOKENS=320 +# default \(200\.\.100000\)", lines["CITEWISE_CONTEXT_TOKENS"])
    assert re.fullmatch(r"SLACK_BOT_TOKEN=\*\*\* +# environment", lines["SLACK_BOT_TOKEN"])
    assert re.fullmatch(r"CITEWISE_SCRUB_PII=1 +# default \(.*\)", lines["CITEWISE_SCRUB_PII"])
    assert "xoxb-very-secret-token" not in text.output and "hunter2" not in text.output


@pytest.mark.parametrize("name, value, message", [
    ("CITEWISE_SOURCES", "abc", "CITEWISE_SOURCES='abc' is not an integer; expected 1..50"),
    ("CITEWISE_SOURCES", "0", "CITEWISE_SOURCES=0 is out of range; expected 1..50"),
    ("CITEWISE_EVIDENCE", "paragraphs", "CITEWISE_EVIDENCE='paragraphs' is not one of sentences, chunks"),
])
def test_a_bad_value_gets_the_error_every_command_gives(cli, monkeypatch, name, value, message) -> None:
    monkeypatch.setenv(name, value)
    shown = cli("config")
    assert shown.exit_code == 2 and message in shown.stderr
    assert cli("config", "--json").stderr == shown.stderr
    other = cli("db", "stop")  # any command: settings are read once, before anything else
    assert other.exit_code == 2 and other.stderr == shown.stderr
