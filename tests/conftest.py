"""Fixtures: one real embedded PostgreSQL per test session, a fresh database per test, the real MiniLM model."""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from chat.engine.llm import endpoint, stop_server
from core import db, pgserver
from core.settings import Settings
from evals import beir
from evals.isolated import isolated_database
from retrieval.embed import LocalEmbedder
from retrieval.ingest import IngestOptions, ingest

_counter = itertools.count()
# Chainlit writes its config directory into its app root on import; keep it out of the working tree
os.environ.setdefault("CHAINLIT_APP_ROOT", tempfile.mkdtemp(prefix="citewise-test-chainlit-"))


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("citewise-home")


@pytest.fixture(scope="session")
def settings(home: Path) -> Settings:
    """Settings on a throw-away home; the assembled 1.1 GB model is shared between runs in the user's cache."""
    s = Settings.from_env({"CITEWISE_HOME": str(home)})
    return dataclasses.replace(s, llm=dataclasses.replace(s.llm, models_dir=Path.home() / ".cache/citewise/models"))


@pytest.fixture(scope="session")
def server_url(settings: Settings):
    """The embedded server, or CITEWISE_TEST_DATABASE_URL's server when set (any PostgreSQL with pgvector)."""
    external = os.environ.get("CITEWISE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    url = db.database_url(settings)
    yield url
    pgserver.stop(settings.pg_dir)


@pytest.fixture(scope="session")
def template_name(server_url: str) -> str:
    """A migrated template database; each test's database is a cheap copy of it."""
    name = f"citewise_test_template_{os.getpid()}"
    isolated_database(server_url, name, fresh=True)
    return name


@pytest.fixture
def url(server_url: str, template_name: str) -> str:
    """A fresh, migrated database for one test."""
    name = f"citewise_test_{os.getpid()}_{next(_counter)}"
    parts = urlsplit(server_url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                      sql.Identifier(template_name)))
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def conn(url: str):
    with db.connect(url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


@pytest.fixture
def run(url, settings, monkeypatch):
    """The ``citewise`` CLI on the test database, invoked in-process."""
    from typer.testing import CliRunner

    from citewise.cli import app

    monkeypatch.setenv("CITEWISE_DATABASE_URL", url)
    monkeypatch.setenv("CITEWISE_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def demo_db(server_url: str, embedder, settings, tmp_path_factory) -> str:
    """A database of its own (per test module) with the demo corpus as source 'handbook' and one 'archive' file."""
    name = f"citewise_demo_{os.getpid()}_{next(_counter)}"
    url = isolated_database(server_url, name, fresh=True)
    ingest(url, embedder, [Path(__file__).resolve().parent.parent / "docs"], settings, IngestOptions(source="handbook"))
    other = write_files(tmp_path_factory.mktemp("other"), {
        "formats.md": "# File formats in the archive\n\nThe archive keeps file types such as TIFF and WAV "
                      "for long-term preservation of scanned records.\n"})
    ingest(url, embedder, [other], settings, IngestOptions(source="archive"))
    yield url
    parts = urlsplit(server_url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory) -> Path:
    """SciFact train's first 120 queries with their judged abstracts and 400 others, as a BEIR folder (shared by
    the learning tests)."""
    folder = tmp_path_factory.mktemp("scifact-slice")
    (folder / "qrels").mkdir()
    data = beir.load(SCIFACT, "train", limit=120)
    judged = {d for rel in data.qrels.values() for d in rel}
    keep = [line for i, line in enumerate((SCIFACT / "corpus.jsonl").read_text().splitlines())
            if i < 400 or line.split('"')[3] in judged]
    (folder / "corpus.jsonl").write_text("\n".join(keep) + "\n")
    shutil.copy(SCIFACT / "queries.jsonl", folder / "queries.jsonl")
    lines = (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()
    (folder / "qrels" / "train.tsv").write_text("\n".join([lines[0]] + [x for x in lines[1:]
                                                                        if x.split("\t")[0] in data.queries]) + "\n")
    return folder


@pytest.fixture(scope="module")
def llm(settings: Settings):
    """The local LLM, started by citewise itself for the module's tests and stopped after them (slow tier)."""
    ep = endpoint(settings.llm)
    yield ep
    stop_server(settings.llm)
