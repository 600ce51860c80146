"""The web UI in a real browser (Debian's Chromium driven by Playwright) against a real `citewise serve`.

The server runs as its own process on the test database with the demo corpus ingested; the LLM is the local
OpenAI-protocol stand-in (grounded replies, streamed slowly enough to watch), so this test is about the UI and its
records, not the model (the real model has its own slow tests).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest

from tests.helpers.serving import ROOT, serve
from tests.helpers.standin_llm import StandIn, grounded_sentences

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("CITEWISE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
USERS = {"alice": "alice-pass-1", "bob": "bob-pass-2"}
QUESTION = "Which file types can I ingest?"


@pytest.fixture(scope="module")
def server(demo_db: str, tmp_path_factory):
    """`citewise serve` as a user runs it, on a free port, with two password users."""
    home = tmp_path_factory.mktemp("web-home")
    with StandIn(grounded_sentences(3), delay_s=0.03) as llm, serve(home, {
            "CITEWISE_DATABASE_URL": demo_db, "CITEWISE_LLM_BASE_URL": llm.base_url, "CITEWISE_LLM_MODEL": "standin",
            "CITEWISE_LLM_API_KEY": "x", "CITEWISE_WEB_USERS": ",".join(f"{u}:{p}" for u, p in USERS.items())}) as base:
        yield base, llm, home


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: `make install` installs Debian's chromium package"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage"])
        yield b
        b.close()


def _page(browser, base: str, user: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("http://127.0.0.1") else r.abort())
    page.goto(f"{base}/chat/")
    page.fill("#email", user)
    page.fill("#password", USERS[user])
    page.keyboard.press("Enter")
    page.wait_for_selector("#chat-input")
    return page


def _ask(page, text: str) -> list[str]:
    """Send a question; return the distinct texts the answer showed while it streamed (the last is final)."""
    answers = page.locator(".step[data-step-type=assistant_message] .message-content")
    before = answers.count()
    thumbs = page.locator("button.negative-feedback-off, button.negative-feedback-on").count()
    page.fill("#chat-input", text)
    page.keyboard.press("Enter")
    seen: list[str] = []
    deadline = time.time() + 60
    while time.time() < deadline:
        if answers.count() > before:
            current = answers.nth(before).inner_text()
            if current and (not seen or seen[-1] != current):
                seen.append(current)
        if page.locator("button.negative-feedback-off, button.negative-feedback-on").count() > thumbs:
            break
        time.sleep(0.05)
    seen.append(answers.nth(before).inner_text())
    return seen


def _db(url: str):
    return psycopg.connect(url, autocommit=True)


def test_browser_flow_settings_citations_feedback_history_and_privacy(server, browser, demo_db) -> None:
    base, llm, _ = server
    page = _page(browser, base, "alice")

    # settings: temperature up two steps (0.1 -> 0.3), and only the 'handbook' source
    page.click("#chat-settings-open-modal")
    dialog = page.locator("[role=dialog]")
    dialog.wait_for()
    slider = page.locator("#temperature [role=slider]")
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert slider.get_attribute("aria-valuenow") == "0.3"
    page.click("label[for=filter_sources] + div input[role=combobox]")
    page.locator("[role=option]", has_text="handbook").click()
    page.click("#confirm")
    page.wait_for_selector("[role=dialog]", state="detached")

    # ask: the answer streams, then carries [n] links that open the source passage in the side panel
    states = _ask(page, QUESTION)
    final = states[-1]
    streamed = [s for s in states[:-1] if "Sources" not in s]
    assert len(streamed) >= 2, f"no streaming observed: {states}"
    answer_text = final.split("Sources")[0]
    final_words = " ".join(answer_text.split())
    for state in streamed:  # only verified units (sentences, paragraphs, tables) were on screen, each kept
        assert " ".join(state.split()).strip("… ") in final_words, f"shown, then not in the answer: {state!r}"
    assert "Sources" in final and "handbook" in final and "archive" not in final
    link = page.locator(".step[data-step-type=assistant_message] a.element-link").first
    chip = link.inner_text()
    link.click()
    side = page.locator("#side-view-content")
    side.wait_for()
    page.wait_for_function("document.querySelector('#side-view-content').innerText.length > 100")
    panel = side.inner_text()
    assert "Source: handbook" in panel and "docs/ingesting.md" in panel
    assert "supported" in panel.lower() or ".pdf" in panel
    assert chip in page.locator("#side-view-title").inner_text()

    # thumbs down with a comment
    page.locator("button.negative-feedback-off").last.click()
    page.locator("[role=dialog] textarea").fill("cited the table, I wanted the PDF limits")
    page.click("#submit-feedback")
    page.wait_for_selector("button.negative-feedback-on")
    page.wait_for_selector("[role=dialog]", state="detached")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-answer.png"))

    with _db(demo_db) as conn:
        row = conn.execute(
            "SELECT f.value, f.comment, f.user_id, f.channel, f.sampling, t.user_id, t.channel, t.sampling, "
            "t.filters, t.question, t.conversation_id, t.id FROM feedback f JOIN turns t ON t.id = f.turn_id "
            "WHERE NOT f.on_source").fetchone()
    assert row is not None, "the thumbs-down was not stored"
    value, comment, f_user, f_channel, f_sampling, t_user, t_channel, t_sampling, t_filters, question, thread, _ = row
    assert (value, comment, f_user, f_channel) == (-1, "cited the table, I wanted the PDF limits", "alice", "web")
    assert question == QUESTION and t_user == "alice" and t_channel == "web"
    assert f_sampling["temperature"] == t_sampling["temperature"] == 0.3 and t_sampling["preset"] == "custom"
    assert t_filters == [{"field": "source", "op": "in", "value": ["handbook"]}]

    # a thumb on one source ("this passage was what I needed"), stored against the turn and the chunk it showed
    page.get_by_role("button", name=f"👍 {chip}").last.click()
    page.get_by_text(f"source {chip} was what you needed").wait_for()
    with _db(demo_db) as conn:
        rated = conn.execute("SELECT f.value, f.user_id, f.channel, f.citation, f.chunk_id, t.citations "
                             "FROM feedback f JOIN turns t ON t.id = f.turn_id WHERE f.on_source").fetchall()
    assert len(rated) == 1
    value, r_user, r_channel, number, chunk_id, citations = rated[0]
    assert (value, r_user, r_channel, f"[{number}]") == (1, "alice", "web", chip)
    assert chunk_id == next(c["chunk_ids"][0] for c in citations if c["number"] == number)

    # a new chat, then reopen the first thread from history and ask a follow-up that depends on it
    page.click("#new-chat-button")
    page.wait_for_function("!document.querySelector('.step[data-step-type=assistant_message]')")
    page.locator("#thread-history").get_by_text(QUESTION).first.click()
    page.wait_for_selector(".step[data-step-type=assistant_message] .message-content")
    before = len(llm.requests)
    _ask(page, "And which of them keeps headings?")
    condense = [r for r in llm.requests[before:] if not r.get("stream")]
    assert condense and QUESTION in condense[0]["messages"][-1]["content"], "the follow-up ignored the thread"
    with _db(demo_db) as conn:
        follow = conn.execute("SELECT conversation_id, standalone_question FROM turns WHERE question = %s",
                              ("And which of them keeps headings?",)).fetchone()
    assert follow[0] == thread and QUESTION in follow[1]

    # another user sees none of it: not in history, not by URL, not through the element route
    other = _page(browser, base, "bob")
    time.sleep(1)
    assert QUESTION not in other.locator("body").inner_text()
    response = other.request.get(f"{base}/chat/project/thread/{thread}")
    assert response.status in (401, 403, 404) and QUESTION not in response.text()
    with _db(demo_db) as conn:
        element_id = conn.execute("SELECT id FROM ui_elements WHERE thread_id = %s LIMIT 1", (thread,)).fetchone()[0]
    assert other.request.get(f"{base}/v1/ui/elements/{element_id}").status == 404
    mine = page.request.get(f"{base}/v1/ui/elements/{element_id}")
    assert mine.status == 200 and "handbook" in mine.text()
    other.goto(f"{base}/chat/thread/{thread}")
    time.sleep(2)
    assert QUESTION not in other.locator("body").inner_text()

    # an overlong question gets a clear message, not an answer
    other.goto(f"{base}/chat/")
    other.wait_for_selector("#chat-settings-open-modal")  # the chat has started: the socket is connected
    other.fill("#chat-input", "why " * 1250)
    other.keyboard.press("Enter")
    other.get_by_text("the limit is 4000").wait_for()


def test_the_welcome_screen_is_citewise_and_says_what_it_answers_from(server, browser, demo_db) -> None:
    import httpx

    base, _, home = server
    page = _page(browser, base, "bob")
    welcome = page.locator("#welcome-screen")
    welcome.wait_for()
    with _db(demo_db) as conn:
        docs = conn.execute("SELECT count(*) FROM documents WHERE source = 'handbook'").fetchone()[0]
    text = welcome.inner_text()
    assert "citewise answers from" in text and f"handbook: {docs} documents" in text, text
    assert "archive: 1 document" in text, text
    assert page.locator("#readme-button").count() == 0, "no Chainlit readme link"
    assert page.title() == "citewise"
    assert "chainlit" not in page.locator("body").inner_text().lower()
    head = httpx.get(f"{base}/chat/", timeout=10).text.split("</head>")[0]
    assert "Chainlit" not in head and "chainlit_banner" not in head, "page metadata names citewise, not Chainlit"
    for path in ("/chat/logo?theme=light", "/chat/logo?theme=dark", "/chat/favicon"):
        r = httpx.get(f"{base}{path}", timeout=10)
        assert r.status_code == 200 and "[1]" in r.text and r.headers["content-type"].startswith("image/svg"), path
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(1500)  # the welcome screen fades in
    page.screenshot(path=str(ARTIFACTS / "welcome.png"))
    page.context.close()
    console = (home / "serve.log").read_text().splitlines()
    assert console[0].startswith("citewise is serving at") and not [
        line for line in console if "warning" in line.lower() or "chainlit" in line.lower()], console
