"""Sources that sync: new and changed files are read, unchanged ones cost a stat, deleted and excluded ones are
forgotten (never searched, shown to the model or cited again), and an unreachable folder deletes nothing.
Real PostgreSQL and MiniLM; the LLM is the local OpenAI-protocol stand-in."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from chat.engine.ask import ask
from chat.engine.llm import Endpoint
from chat.engine.services import Services, open_pool
from chat.types import Question
from retrieval import sources
from retrieval.filters import EVERYTHING
from retrieval.rerank import load_reranker
from retrieval.search import search
from tests.helpers.standin_llm import StandIn

FILES = {
    "vacation.md": "# Vacation\n\nNew employees get 25 vacation days per year, booked in the HR portal.\n",
    "parking.md": "# Parking\n\nThe garage under building C has 40 spaces for visitors, free for two hours.\n",
    "drafts/salary.md": "# Salary bands\n\nThe draft salary bands for engineers start at level E1.\n",
    "expenses.md": "# Expenses\n\nTravel costs are reimbursed monthly after the manager approves them.\n",
}
GONE = "40 spaces for visitors"  # the deleted file's words, not the question's


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "handbook"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def texts(conn, embedder, query: str) -> list[str]:
    return [h.text for h in search(conn, embedder, query, scope=EVERYTHING, k=10)]


def test_a_sync_reads_only_what_changed_and_forgets_deleted_files(url, conn, embedder, settings, folder) -> None:
    sources.add(conn, sources.Source("handbook", str(folder), exclude=("drafts/*",)))
    conn.commit()
    first = sources.sync(url, embedder, settings, "handbook")
    assert first.ok and first.counts["added"] == 3 and first.counts["files"] == 3, first  # drafts/ excluded
    assert not any("salary" in t for t in texts(conn, embedder, "salary bands for engineers"))

    (folder / "vacation.md").write_text(FILES["vacation.md"].replace("25", "30"))
    (folder / "parking.md").unlink()
    (folder / "onboarding.md").write_text("# Onboarding\n\nEvery new hire meets a buddy on their first day.\n")
    second = sources.sync(url, embedder, settings, "handbook")
    c = second.counts
    assert (c["read"], c["skipped"], c["added"], c["updated"], c["deleted"]) == (2, 1, 1, 1, 1), c
    assert not any(GONE in t for t in texts(conn, embedder, "visitor parking garage spaces"))
    assert any("30 vacation days" in t for t in texts(conn, embedder, "how many vacation days"))
    assert conn.execute("SELECT count(*) FROM documents WHERE source = 'handbook'").fetchone()[0] == 3

    third = sources.sync(url, embedder, settings, "handbook")
    assert (third.counts["read"], third.counts["deleted"], third.counts["skipped"]) == (0, 0, 3)
    row = sources.listing(conn)[0]
    assert row["result"] == "ok" and row["documents"] == 3 and row["counts"]["skipped"] == 3


def test_a_deleted_file_is_never_shown_to_the_model_or_cited(url, conn, embedder, settings, folder) -> None:
    sources.add(conn, sources.Source("handbook", str(folder)))
    conn.commit()
    sources.sync(url, embedder, settings, "handbook")
    prompts: list[str] = []

    def reply(req):
        prompts.append(req["messages"][-1]["content"])
        return "The garage under building C has 40 spaces for visitors [1]."

    def asked(conversation: str):
        pool = open_pool(url, 2)
        try:
            with StandIn(reply) as llm:
                svc = Services(settings, pool, embedder, load_reranker(settings.rerank),  # type: ignore[arg-type]
                               Endpoint(llm.base_url, "k", "standin", False))
                return ask(svc, Question(text="How many visitor spaces does the garage under building C have?",
                                         conversation_id=conversation, channel="web", user_id="ada", scope=EVERYTHING))
        finally:
            pool.close()

    before = asked("c1")
    assert GONE in before.text and any(GONE in c.text for c in before.citations)  # answered while the file existed
    (folder / "parking.md").unlink()
    sources.sync(url, embedder, settings, "handbook")
    prompts.clear()
    after = asked("c2")  # a new conversation: no history carries the old answer
    assert not any(GONE in p for p in prompts)
    assert GONE not in after.text and not any(GONE in c.text for c in after.sources + after.citations)


def test_an_unreachable_folder_deletes_nothing_and_says_so(url, conn, embedder, settings, folder) -> None:
    sources.add(conn, sources.Source("handbook", str(folder)))
    conn.commit()
    sources.sync(url, embedder, settings, "handbook")
    moved = folder.with_name("elsewhere")
    shutil.move(folder, moved)
    res = sources.sync(url, embedder, settings, "handbook")
    assert not res.ok and "not reachable" in res.result and "nothing was deleted" in res.result
    assert conn.execute("SELECT count(*) FROM documents WHERE source = 'handbook'").fetchone()[0] == 4
    assert sources.listing(conn)[0]["result"] == res.result
    shutil.move(moved, folder)
    again = sources.sync(url, embedder, settings, "handbook")
    assert again.ok and again.counts["read"] == 0 and again.counts["deleted"] == 0


def test_a_file_that_turns_bad_keeps_its_document_and_is_read_again(url, conn, embedder, settings, folder) -> None:
    sources.add(conn, sources.Source("handbook", str(folder)))
    conn.commit()
    sources.sync(url, embedder, settings, "handbook")
    (folder / "expenses.md").write_bytes(b"\x00\x01binary junk" * 10)
    bad = sources.sync(url, embedder, settings, "handbook")
    assert bad.ok and bad.counts["failed"] == 1 and bad.counts["deleted"] == 0
    assert "expenses.md" in bad.failures[0]["file"] and "binary" in bad.failures[0]["reason"]
    assert any("reimbursed monthly" in t for t in texts(conn, embedder, "when are travel costs reimbursed"))
    assert sources.sync(url, embedder, settings, "handbook").counts["read"] == 1  # tried again, not remembered


def test_a_name_used_by_documents_from_elsewhere_is_refused(url, conn, embedder, settings, folder, tmp_path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.md").write_text("# A\n\nSomething kept elsewhere entirely.\n")
    from retrieval.ingest import IngestOptions, ingest

    ingest(url, embedder, [other], settings, IngestOptions(source="handbook"))
    with pytest.raises(sources.SourceError, match="ingested from outside"):
        sources.add(conn, sources.Source("handbook", str(folder)))
    with pytest.raises(sources.SourceError, match="not a folder"):
        sources.add(conn, sources.Source("nowhere", str(tmp_path / "missing")))
    with pytest.raises(sources.SourceError, match="at least a minute"):
        sources.parse_every("10s")
    assert sources.parse_every("15m") == 900


def test_the_cli_adds_lists_syncs_and_removes(run, folder, conn) -> None:
    added = run("sources", "add", "handbook", str(folder), "--every", "1h", "--groups", "staff")
    assert added.exit_code == 0 and "4 files" in added.stdout, added.stdout
    rows = json.loads(run("sources", "list", "--json").stdout)
    assert rows[0]["name"] == "handbook" and rows[0]["documents"] == 4 and rows[0]["every_s"] == 3600
    assert rows[0]["next_run"] is not None and rows[0]["groups"] == ["staff"]
    groups = {tuple(r[0]) for r in conn.execute("SELECT access_groups FROM documents WHERE source = 'handbook'")}
    assert groups == {("staff",)}
    os.remove(folder / "parking.md")
    synced = run("sources", "sync", "handbook")
    assert synced.exit_code == 0 and "1 deleted" in synced.stdout
    assert run("sources", "sync", "nope").exit_code == 2
    gone = run("sources", "remove", "handbook")
    assert gone.exit_code == 0 and "3 document(s)" in gone.stdout
    assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0


def _git(repo, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_a_git_source_reads_the_diff_between_commits_and_cites_path_at_commit(url, conn, embedder, settings,
                                                                              folder) -> None:
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "one")
    first_commit = _git(folder, "rev-parse", "HEAD")
    made = sources.add(conn, sources.Source("wiki", str(folder), exclude=("drafts/*",)), settings.home)
    conn.commit()
    assert made.kind == "git" and made.branch == "main"
    one = sources.sync(url, embedder, settings, "wiki")
    assert one.ok and one.counts["added"] == 3, one
    uris = {r[0] for r in conn.execute("SELECT uri FROM documents WHERE source = 'wiki'")}
    assert uris == {f"{n}@{first_commit[:12]}" for n in ("vacation.md", "parking.md", "expenses.md")}
    meta = conn.execute("SELECT metadata FROM documents WHERE uri LIKE 'vacation.md@%'").fetchone()[0]
    assert meta["commit"] == first_commit and meta["path"] == "vacation.md"

    (folder / "vacation.md").write_text(FILES["vacation.md"].replace("25", "30"))
    (folder / "parking.md").unlink()
    (folder / "onboarding.md").write_text("# Onboarding\n\nEvery new hire meets a buddy on their first day.\n")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "two")
    (folder / "expenses.md").write_text("uncommitted edits are not the branch's")  # the work tree is not synced
    two = sources.sync(url, embedder, settings, "wiki")
    c = two.counts
    assert (c["read"], c["skipped"], c["added"], c["updated"], c["deleted"]) == (2, 1, 1, 1, 1), c
    assert not any(GONE in t for t in texts(conn, embedder, "visitor parking garage spaces"))
    assert any("30 vacation days" in t for t in texts(conn, embedder, "how many vacation days"))
    assert any("reimbursed monthly" in t for t in texts(conn, embedder, "when are travel costs reimbursed"))
    second_commit = _git(folder, "rev-parse", "HEAD")
    assert conn.execute("SELECT uri FROM documents WHERE uri LIKE 'vacation.md@%'").fetchone()[0] == \
        f"vacation.md@{second_commit[:12]}"
    assert conn.execute("SELECT count(*) FROM documents WHERE source = 'wiki'").fetchone()[0] == 3

    same = sources.sync(url, embedder, settings, "wiki")  # no new commit: nothing read at all
    assert same.ok and same.counts["read"] == 0 and same.counts["deleted"] == 0
    row = next(r for r in sources.listing(conn) if r["name"] == "wiki")
    assert row["commit"] == second_commit and row["kind"] == "git"


def test_a_git_remote_that_goes_away_deletes_nothing_and_links_name_the_commit(url, conn, embedder, settings,
                                                                               folder, tmp_path) -> None:
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "one")
    sources.add(conn, sources.Source("wiki", str(folder), branch="main"), settings.home)
    conn.commit()
    assert sources.sync(url, embedder, settings, "wiki").counts["added"] == 4
    shutil.move(folder, tmp_path / "moved")
    gone = sources.sync(url, embedder, settings, "wiki")
    assert not gone.ok and "nothing was deleted" in gone.result
    assert conn.execute("SELECT count(*) FROM documents WHERE source = 'wiki'").fetchone()[0] == 4
    with pytest.raises(sources.SourceError, match="could not be cloned"):
        sources.add(conn, sources.Source("nope", str(tmp_path / "moved"), branch="no-such-branch"), settings.home)
    from retrieval.sources_git import link

    assert link("https://github.com/acme/handbook.git", "abc123", "hr/leave.md") == \
        "https://github.com/acme/handbook/blob/abc123/hr/leave.md"
    assert link("git@gitlab.com:acme/handbook.git", "abc123", "a.md") == \
        "https://gitlab.com/acme/handbook/-/blob/abc123/a.md"
    assert link("/srv/repos/handbook", "abc123", "a.md") is None


def test_a_renamed_file_keeps_its_ratings_and_its_answers(url, conn, embedder, settings, folder) -> None:
    from chat.feedback.collect import collect
    from chat.turns.store import rate_source

    sources.add(conn, sources.Source("handbook", str(folder)))
    conn.commit()
    sources.sync(url, embedder, settings, "handbook")

    def reply(req):
        prompt = req["messages"][-1]["content"]
        n = next(line.split('"')[1] for line in prompt.splitlines() if 'title="Vacation"' in line)
        return f"New employees get 25 vacation days per year [{n}]."

    pool = open_pool(url, 2)
    try:
        with StandIn(reply) as llm:
            svc = Services(settings, pool, embedder, load_reranker(settings.rerank),  # type: ignore[arg-type]
                           Endpoint(llm.base_url, "k", "standin", False))
            turn = ask(svc, Question(text="How many vacation days do new employees get?", conversation_id="c1",
                                     channel="web", user_id="ada", scope=EVERYTHING))
    finally:
        pool.close()
    cited = turn.citations[0]
    rate_source(conn, turn.turn_id, cited.number, "up", user_id="ada", channel="web")
    assert [p.positive for p in collect(conn).pairs] == [cited.chunk_ids[0]]

    (folder / "vacation.md").rename(folder / "leave-policy.md")
    moved = sources.sync(url, embedder, settings, "handbook")
    assert (moved.counts["added"], moved.counts["deleted"]) == (1, 1)
    new_chunk = conn.execute("SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id "
                             "WHERE d.uri LIKE '%%leave-policy.md'").fetchone()[0]
    assert new_chunk != cited.chunk_ids[0]
    assert [p.positive for p in collect(conn).pairs] == [new_chunk]  # the rating followed the passage
    shown = conn.execute("SELECT citations->0->>'text' FROM turns WHERE id = %s", (turn.turn_id,)).fetchone()[0]
    assert "25 vacation days" in shown  # the answer's source text is still there, not scrubbed as deleted

    (folder / "leave-policy.md").unlink()
    sources.sync(url, embedder, settings, "handbook")
    shown = conn.execute("SELECT citations->0->>'text' FROM turns WHERE id = %s", (turn.turn_id,)).fetchone()[0]
    assert "removed" in shown  # a real deletion is scrubbed from stored answers


def test_admins_see_each_sources_state_under_the_welcome(url, conn, embedder, settings, folder) -> None:
    from chat.web.render import sources_markdown

    (folder / "scan.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    sources.add(conn, sources.Source("handbook", str(folder), every_s=900))
    conn.commit()
    sources.sync(url, embedder, settings, "handbook")
    shown = sources_markdown(sources.listing(conn))
    assert "**handbook** (folder, 4 documents)" in shown and "4 added, 1 failed" in shown
    assert "scan.pdf:" in shown and "next " in shown
    assert sources_markdown([]) == ""


def test_one_sync_of_a_source_at_a_time_across_processes(url, conn, embedder, settings, folder) -> None:
    import psycopg

    sources.add(conn, sources.Source("handbook", str(folder)))
    conn.commit()
    with psycopg.connect(url, autocommit=True) as other:  # another machine's sync, holding the source's lock
        other.execute("SELECT pg_advisory_lock(hashtext('citewise-source:' || 'handbook'))")
        with pytest.raises(sources.SourceError, match="already running"):
            sources.sync(url, embedder, settings, "handbook")
    assert sources.sync(url, embedder, settings, "handbook").ok  # the lock went with its session


def test_a_folder_that_lists_nothing_now_deletes_nothing(url, conn, embedder, settings, folder) -> None:
    sources.add(conn, sources.Source("handbook", str(folder)))
    conn.commit()
    sources.sync(url, embedder, settings, "handbook")
    for p in sorted(folder.rglob("*"), reverse=True):  # an unmounted share leaves its empty mount point
        p.unlink() if p.is_file() else p.rmdir()
    empty = sources.sync(url, embedder, settings, "handbook")
    assert not empty.ok and "lists nothing now" in empty.result and "Nothing was deleted" in empty.result
    assert conn.execute("SELECT count(*) FROM documents WHERE source = 'handbook'").fetchone()[0] == 4
    import psycopg

    with psycopg.connect(url, autocommit=True) as other:  # a removal waits for a running sync, too
        other.execute("SELECT pg_advisory_lock(hashtext('citewise-source:' || 'handbook'))")
        with pytest.raises(sources.SourceError, match="already running"):
            sources.remove(conn, "handbook")
    assert sources.remove(conn, "handbook") == 4


def test_a_git_file_that_fails_keeps_its_document_is_retried_and_links_outside_are_not_read(
        url, conn, embedder, settings, folder, tmp_path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nThe server's database password is hunter2-correct-horse.\n")
    (folder / "leak.md").symlink_to(secret)
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "one")
    sources.add(conn, sources.Source("wiki", str(folder)), settings.home)
    conn.commit()
    one = sources.sync(url, embedder, settings, "wiki")
    assert one.counts["files"] == 4, one  # the link out of the repository is not a file of it
    assert not any("hunter2" in t for t in texts(conn, embedder, "database password"))

    (folder / "expenses.md").write_text("---\ntitle: Expenses\n---\n")  # front matter only: no text
    _git(folder, "commit", "-q", "-am", "two")
    two = sources.sync(url, embedder, settings, "wiki")
    assert two.counts["failed"] == 1 and "no text" in two.failures[0]["reason"], two
    assert two.failures[0]["file"] == "expenses.md"  # named by its path in the repository
    assert any("reimbursed monthly" in t for t in texts(conn, embedder, "when are travel costs reimbursed"))
    again = sources.sync(url, embedder, settings, "wiki")  # no new commit, yet the failed file is read again
    assert again.counts["read"] == 1 and again.counts["failed"] == 1
    assert sources.masked("https://bot:ghp_SECRET@github.com/acme/x.git failed") == \
        "https://***@github.com/acme/x.git failed"
