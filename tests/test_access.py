"""Access control and privacy workflows in-process: the chain, the CLI, the replay, forget, retention, holds and
deleted documents. Two users; a restricted document carries a unique marker that must never reach the one without
its group. (The HTTP doors — API, OpenAI endpoint, Slack — are tested against the running server in
test_api_slack.py.)"""

from __future__ import annotations

import json

import pytest

from chat.desk.frontdesk import AskRequest, FrontDesk
from chat.engine.llm import Endpoint
from chat.engine.services import Services, open_pool
from core import access, privacy
from retrieval import store
from retrieval.rerank import load_reranker
from retrieval.types import Document
from tests.corpus import store_documents
from tests.helpers.standin_llm import StandIn, grounded_reply

MARKER = "ZEBRA-7731"
VAULT = Document(source="facilities", uri="vault.md", title="Vault", groups=("secret",),
                 text=f"# Vault\n\nThe vault combination is {MARKER}, and the facilities team keeps it.")
LOBBY = Document(source="facilities", uri="lobby.md", title="Lobby",
                 text="# Lobby\n\nThe lobby opens at seven and visitors sign in at the front desk.")


@pytest.fixture
def setup(url, conn, embedder, settings):
    store_documents(conn, embedder, settings, [VAULT, LOBBY])
    access.add_user(conn, "alice", ["secret"], admin=False, legal_hold=False)
    access.add_user(conn, "bob", [], admin=False, legal_hold=False)
    pool = open_pool(url, 2)
    yield pool
    pool.close()


def _ask(pool, embedder, settings, llm, user, text, conversation="c", **kw):
    services = Services(settings, pool, embedder, load_reranker(settings.rerank),
                        Endpoint(llm.base_url, "k", "standin", False))
    return FrontDesk(services).ask(AskRequest(text=text, channel="web", user_id=user, conversation_id=conversation,
                                              **kw))


def test_restricted_text_never_reaches_a_user_without_the_group(setup, embedder, settings) -> None:
    with StandIn(grounded_reply) as llm:
        alice = _ask(setup, embedder, settings, llm, "alice", "What is the vault combination?")
        assert MARKER in alice.text and any(MARKER in c.text for c in alice.citations)
        bob = _ask(setup, embedder, settings, llm, "bob", "What is the vault combination?")
        stranger = _ask(setup, embedder, settings, llm, None, "What is the vault combination?")
        prompts = [r["messages"][-1]["content"] for r in llm.requests[1:]]
    for answer in (bob, stranger):
        assert MARKER not in json.dumps(answer.to_json())
    assert not any(MARKER in p for p in prompts), "the model never saw the restricted passage for bob"


def test_a_shared_conversation_does_not_carry_another_readers_answers(setup, embedder, settings) -> None:
    with StandIn(grounded_reply) as llm:
        _ask(setup, embedder, settings, llm, "alice", "What is the vault combination?", "slack:C1:1.0")
        n = len(llm.requests)
        bob = _ask(setup, embedder, settings, llm, "bob", "and who keeps it?", "slack:C1:1.0")
        sent = json.dumps(llm.requests[n:])
    assert MARKER not in sent and MARKER not in bob.standalone_question and MARKER not in bob.text


def test_one_rule_for_who_may_rate_a_turn(setup, conn, embedder, settings) -> None:
    """Every door rates through the desk: the asker or an admin; anyone else is told the turn is not theirs, and
    nothing is stored. The CLI's operator (no CITEWISE_USER) may rate any turn."""
    from chat.desk.frontdesk import Rating
    from chat.desk.refusals import NotFound, Rejected

    access.add_user(conn, "root", [], admin=True, legal_hold=False)
    with StandIn(grounded_reply) as llm:
        turn = _ask(setup, embedder, settings, llm, "alice", "Where is the lobby?").turn_id
        desk = FrontDesk(Services(settings, setup, embedder, load_reranker(settings.rerank),
                                  Endpoint(llm.base_url, "k", "standin", False)))
    for channel in ("web", "api", "slack", "cli"):
        with pytest.raises(NotFound, match="only the person who asked it, or an admin"):
            desk.rate(Rating(turn_id=turn, value="up", user_id="bob", channel=channel))
    with pytest.raises(NotFound, match="in this conversation"):
        desk.rate(Rating(turn_id=turn, value="up", user_id="alice", channel="web", conversation_id="another"))
    with pytest.raises(Rejected, match="is not a turn id"):
        desk.rate(Rating(turn_id="nonsense", value="up", user_id="alice", channel="api"))
    assert conn.execute("SELECT count(*) FROM feedback").fetchone()[0] == 0
    desk.rate(Rating(turn_id=turn, value="up", user_id="alice", channel="web"))
    desk.rate(Rating(turn_id=turn, value="down", user_id="root", channel="api", comment="admin review"))
    desk.rate(Rating(turn_id=turn, value="down", user_id=None, channel="cli", operator=True))
    assert conn.execute("SELECT user_id, value FROM feedback ORDER BY id").fetchall() == [
        ("alice", 1), ("root", -1), (None, -1)]


def test_public_ungrouped_can_be_switched_off(setup, embedder, settings) -> None:
    import dataclasses

    closed = dataclasses.replace(settings, public_ungrouped=False)
    with StandIn(grounded_reply) as llm:
        bob = _ask(setup, embedder, closed, llm, "bob", "When does the lobby open?")
    assert bob.abstained and not bob.sources


def test_the_welcome_lists_only_what_the_reader_may_read(setup, embedder, settings) -> None:
    from chat.web.render import welcome_markdown

    desk = FrontDesk(Services(settings, setup, embedder, load_reranker(settings.rerank),
                              Endpoint("http://x", "k", "m", False)))
    with setup.connection() as conn:
        alice = store.corpus_summary(conn, desk.scope_of("alice"))
        bob = store.corpus_summary(conn, desk.scope_of("bob"))
    assert [(s, n) for s, n, _ in alice] == [("facilities", 2)]
    assert [(s, n) for s, n, _ in bob] == [("facilities", 1)], "bob may read the lobby, not the vault"
    shown = welcome_markdown(bob)
    assert "facilities**: 1 document" in shown and "from 1 document you may read" in shown
    assert "No documents you may read" in welcome_markdown([])


def test_cli_identity_search_and_admin_only_review(run, setup, monkeypatch) -> None:
    assert MARKER in run("search", "vault combination", "--json").stdout, "the operator reads everything"
    monkeypatch.setenv("CITEWISE_USER", "bob")
    assert MARKER not in run("search", "vault combination", "--json").stdout
    for args in (("feedback", "list"), ("feedback", "export", "--out", "-"), ("feedback", "report"),
                 ("eval", "replay"), ("users", "list"), ("delete", "--source", "facilities")):
        refused = run(*args)
        assert refused.exit_code == 2 and "is for admins" in refused.stdout + refused.stderr, args
    monkeypatch.setenv("CITEWISE_USER", "alice")
    assert MARKER in run("search", "vault combination", "--json").stdout


def test_replay_uses_each_turns_own_access(run, setup, embedder, settings, conn) -> None:
    from chat.feedback.replay import replay

    with StandIn(grounded_reply) as llm:
        a = _ask(setup, embedder, settings, llm, "alice", "What is the vault combination?")
        b = _ask(setup, embedder, settings, llm, "bob", "What is the vault combination?")
    from chat.turns.store import record_feedback

    record_feedback(conn, a.turn_id, "up", user_id="alice")
    record_feedback(conn, b.turn_id, "down", user_id="bob")
    services = Services(settings, setup, embedder, load_reranker(settings.rerank), None)  # type: ignore[arg-type]
    report = replay(services)
    by_turn = {c.turn_id: c for c in report.cases}
    assert by_turn[a.turn_id].outcome == "kept" and report.regressions == 0
    assert by_turn[b.turn_id].outcome == "unchanged"


def test_forget_retention_holds_and_deleted_documents(run, setup, embedder, settings, conn) -> None:
    with StandIn(grounded_reply) as llm:
        a = _ask(setup, embedder, settings, llm, "alice", "What is the vault combination?")
        _ask(setup, embedder, settings, llm, "bob", "When does the lobby open?")
    conn.execute("INSERT INTO ui_users (identifier) VALUES ('bob')")
    conn.execute("INSERT INTO ui_threads (id, user_identifier) VALUES ('t-bob', 'bob')")

    # deleting a document scrubs its passage from stored answers; a held source cannot be deleted
    privacy.set_hold(conn, source="facilities", reason="audit 2026")
    with pytest.raises(privacy.HoldError, match="under legal hold \\(audit 2026\\)"):
        store.delete(conn, document_id=VAULT.id)
    held = run("delete", "--source", "facilities")
    assert held.exit_code == 2 and "citewise hold remove --source facilities" in held.stdout + held.stderr
    privacy.set_hold(conn, source="facilities", on=False)
    assert store.delete(conn, document_id=VAULT.id) == 1
    cited = conn.execute("SELECT citations FROM turns WHERE id = %s", (a.turn_id,)).fetchone()[0]
    assert cited and all(c["text"] == privacy.SCRUBBED for c in cited)
    assert MARKER not in json.dumps(conn.execute("SELECT json_agg(citations) FROM turns").fetchone()[0])

    # forget: refused under a user hold, then everything of bob's goes
    privacy.set_hold(conn, user="bob")
    refused = run("forget", "--user", "bob")
    assert refused.exit_code == 2 and "legal hold" in refused.stdout + refused.stderr
    privacy.set_hold(conn, user="bob", on=False)
    assert run("forget", "--user", "bob").exit_code == 0
    assert conn.execute("SELECT count(*) FROM turns WHERE user_id = 'bob'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM ui_threads WHERE user_identifier = 'bob'").fetchone()[0] == 0

    # retention: old turns go, a held user's stay
    conn.execute("UPDATE turns SET created_at = now() - interval '40 days'")
    privacy.set_hold(conn, user="alice")
    assert run("retention", "--days", "30").exit_code == 0
    assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 1, "alice is on hold"
    privacy.set_hold(conn, user="alice", on=False)
    run("retention", "--days", "30")
    assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 0


def test_secrets_stay_out_of_settings_reprs_and_errors() -> None:
    from core import db
    from core.settings import Settings

    secrets = {"CITEWISE_LLM_API_KEY": "sk-llm-secret-1", "CITEWISE_API_TOKENS": "carol:api-token-secret-123456",
               "SLACK_BOT_TOKEN": "xoxb-slack-secret", "SLACK_SIGNING_SECRET": "signing-secret-9",
               "CITEWISE_WEB_USERS": "alice:web-password-7", "CITEWISE_AUTH_SECRET": "auth-secret-3",
               "CITEWISE_EMBEDDING_API_KEY": "sk-embed-secret-2"}
    shown = repr(Settings.from_env({"CITEWISE_HOME": "/tmp/x", **secrets}))
    assert not [v for v in secrets.values() if v.split(":")[-1] in shown]
    assert "hunter2" not in db.mask_url("postgresql://app:hunter2@db.example:5432/citewise")
