from __future__ import annotations

import json

from tests.conftest import write_files


def test_ingest_search_delete_round_trip(tmp_path, run) -> None:
    write_files(tmp_path, {
        "billing.md": "# Billing\n\nInvoices are sent on the first working day of each month.",
        "support.html": "<html><title>Support</title><body><nav>menu</nav><h1>Support</h1>"
                        "<p>Support answers within four hours on weekdays.</p></body></html>",
        "broken.pdf": b"%PDF-1.7 not really",
    })
    first = run("ingest", str(tmp_path), "--source", "kb", "--meta", "team=ops", "--groups", "staff")
    assert first.exit_code == 1, "a failed file makes the exit code say so"
    assert "added" in first.stdout and "2" in first.stdout
    assert "broken.pdf" in first.stdout and "not a readable PDF" in first.stdout
    second = run("ingest", str(tmp_path / "billing.md"), str(tmp_path / "support.html"), "--source", "kb",
                 "--meta", "team=ops", "--groups", "staff")
    assert second.exit_code == 0
    assert "unchanged" in second.stdout

    found = run("search", "when are invoices sent", "--json", "--k", "2", "--filter", "meta.team=ops")
    assert found.exit_code == 0, found.stdout
    hits = json.loads(found.stdout)
    assert hits[0]["title"] == "Billing" and hits[0]["source"] == "kb"
    for key in ("chunk_id", "document_id", "vector_rank", "keyword_rank", "score", "text", "heading_path"):
        assert key in hits[0]

    bad = run("search", "invoices", "--filter", "colour=red")
    assert bad.exit_code == 2 and "unknown filter field 'colour'" in bad.stderr + bad.stdout

    gone = run("delete", "--source", "kb")
    assert gone.exit_code == 0 and "Deleted 2 documents" in gone.stdout
    empty = run("search", "invoices", "--json")
    assert json.loads(empty.stdout) == []


def test_bad_settings_and_arguments_get_clear_errors(run, monkeypatch) -> None:
    monkeypatch.setenv("CITEWISE_CHUNK_TOKENS", "lots")
    result = run("search", "x")
    assert result.exit_code == 2
    assert "CITEWISE_CHUNK_TOKENS='lots' is not an integer" in result.stderr + result.stdout
    monkeypatch.delenv("CITEWISE_CHUNK_TOKENS")
    assert run("delete").exit_code == 2
    assert run("search", "x", "--mode", "fuzzy").exit_code == 2


def test_unreachable_database_is_reported_with_masked_password(run, monkeypatch) -> None:
    monkeypatch.setenv("CITEWISE_DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:1/x")
    result = run("search", "anything")
    out = result.stderr + result.stdout
    assert result.exit_code == 2
    assert "hunter2" not in out and "u:***@127.0.0.1:1" in out


def test_ask_json_and_feedback_through_the_cli(tmp_path, run, monkeypatch, conn) -> None:
    from tests.helpers.standin_llm import StandIn

    write_files(tmp_path, {"billing.md": "# Billing\n\nInvoices are sent on the first working day of each month."})
    assert run("ingest", str(tmp_path), "--source", "kb").exit_code == 0
    with StandIn("Invoices are sent on the first working day of each month [1].") as llm:
        monkeypatch.setenv("CITEWISE_LLM_BASE_URL", llm.base_url)
        result = run("ask", "When are invoices sent?", "--json", "--temperature", "0.3", "--top-k", "5")
        assert result.exit_code == 0, result.stdout
        answer = json.loads(result.stdout)
        assert llm.requests[-1]["temperature"] == 0.3 and llm.requests[-1]["top_k"] == 5
    assert answer["abstained"] is False and answer["citations"][0]["title"] == "Billing"
    turn = answer["turn_id"]
    fb = run("feedback", turn, "down", "--comment", "too slow", "--citation", "1")
    assert fb.exit_code == 0 and "stored" in fb.stdout
    assert conn.execute("SELECT value, comment, citation FROM feedback WHERE turn_id = %s", (turn,)).fetchone() == (
        -1, "too slow", 1)
    bad = run("feedback", turn, "sideways")
    assert bad.exit_code == 2 and "not one of: up, down" in bad.stdout + bad.stderr
    bad_sampling = run("ask", "x", "--temperature", "5")
    assert bad_sampling.exit_code == 2
    assert "temperature=5.0 is out of range" in bad_sampling.stdout + bad_sampling.stderr


def test_default_preset_comes_from_the_environment(run, monkeypatch) -> None:
    monkeypatch.setenv("CITEWISE_PRESET", "wild")
    result = run("ask", "x")
    assert result.exit_code == 2 and "unknown preset 'wild'" in result.stdout + result.stderr
