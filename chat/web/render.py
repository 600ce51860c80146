"""An answer as the web UI shows it: Markdown with [n] chips, and each source as a side-panel page.

Document text is data, not markup: it is escaped before it becomes Markdown, so a passage can neither format the
page nor plant links or HTML.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from chat.engine.citations import cited_numbers
from chat.types import Answer, Citation
from retrieval import keywords

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]*)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto|javascript|data):[^>]*)>", re.I)
# ":" too: Chainlit's Markdown reads ":word" as a directive and drops it, so "alice:password1,bob:password2"
# showed as "alice" and ",bob" on separate lines
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|<>~=:])")


def escape(text: str) -> str:
    """Markdown- and HTML-inert text (backslash-escaped punctuation; Chainlit renders no raw HTML anyway)."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("@", "@\u200b")


def defang(text: str) -> str:
    """Model output keeps its Markdown formatting but loses what an injected instruction could abuse: images (which
    the browser would fetch, leaking data in the URL) become their alt text, and links show their real target
    instead of hiding it behind a label."""
    text = _IMAGE.sub(lambda m: f"[image: {m.group(1) or 'no description'}]", text)
    text = _LINK.sub(lambda m: f"{m.group(1)} (`{m.group(2).replace('`', '')}`)", text)
    return _AUTOLINK.sub(lambda m: f"`{m.group(1).replace('`', '')}`", text)


def chip(n: int) -> str:
    """The element name the UI turns into a link wherever it appears in the message."""
    return f"[{n}]"


def claims_for(answer_text: str, n: int) -> list[str]:
    """The answer's sentences that cite [n]."""
    return [s for s in _SENTENCE.split(answer_text) if n in cited_numbers(s)]


def supporting(passage: str, claims: list[str]) -> list[tuple[str, bool]]:
    """The passage's sentences, each flagged when it shares enough terms with the claims to be the cited span."""
    claim_terms = set(keywords.terms(" ".join(claims)))
    sentences = [s for s in _SENTENCE.split(passage) if s.strip()]
    overlaps = [len(set(keywords.terms(s)) & claim_terms) for s in sentences]
    best = max(overlaps, default=0)
    if best == 0:
        return [(s, False) for s in sentences]
    return [(s, o >= max(2, best * 0.6) or o == best) for s, o in zip(sentences, overlaps, strict=True)]


def source_page(c: Citation, answer_text: str) -> str:
    """The side panel for one source: title, where it is from, its date and span, and the passage with the
    sentences that support the answer in bold."""
    meta = [f"**Source:** {escape(c.source)}", f"**Location:** `{c.uri.replace('`', '')}`"]
    if c.date:
        meta.append(f"**Date:** {c.date}")
    meta.append(f"**Characters:** {c.start}–{c.end}")
    if c.withheld:
        meta.append(f"**⚠ Withheld:** {c.withheld} sentence(s) here address the assistant (like \"ignore previous "
                    "instructions\"). They were treated as data: kept out of the prompt and not shown.")
    marked = supporting(c.text, claims_for(answer_text, c.number))
    body = " ".join(_lines(s, hit) for s, hit in marked)
    return (f"### {escape(c.title or c.source)}\n\n" + "\n".join(f"- {m}" for m in meta) + "\n\n---\n\n"
            + body.replace("\n", "  \n"))


def _lines(sentence: str, bold: bool) -> str:
    """Escaped text, bold per line: Markdown emphasis cannot span a line break."""
    if not bold:
        return escape(sentence)
    return "\n".join(f"**{escape(line.strip())}**" if line.strip() else line for line in sentence.split("\n"))


def answer_markdown(answer: Answer) -> tuple[str, list[Citation]]:
    """The message text and the sources to attach (cited ones, or the closest ones when abstaining)."""
    if answer.abstained:
        listed = list(answer.sources)
        lines = ["> **Not found in the sources.** " + escape(answer.text)]
        if listed:
            lines.append("\n**Closest sources** (they do not answer the question):")
            lines += [f"- {chip(c.number)} {escape(c.title or c.source)} · {escape(c.source)}" for c in listed]
        return "\n".join(lines), listed
    listed = list(answer.citations)
    text = defang(answer.text)
    if listed:
        text += "\n\n**Sources**\n" + "\n".join(f"- {chip(c.number)} {escape(c.title or c.source)} · "
                                               f"{escape(c.source)}" for c in listed)
    return text, listed


def welcome_markdown(corpus: list[tuple[str, int, datetime | None]]) -> str:
    """The welcome screen: what this reader can ask about (the sources in their access scope) and how answers
    look. ``corpus`` is ``retrieval.store.corpus_summary`` for the reader."""
    if not corpus:
        return ("**citewise** answers questions from your organisation's documents, every claim cited. No documents "
                "you may read have been added yet: an admin adds them with `citewise ingest PATH`.")
    docs = sum(n for _, n, _ in corpus)
    lines = [f"**citewise** answers from {docs} document{'s' * (docs != 1)} you may read, every claim cited as "
             "**[n]** (click one to read its passage):", ""]
    for source, n, newest in corpus[:8]:
        when = f", newest {newest.date().isoformat()}" if newest else ""
        lines.append(f"- **{escape(source)}**: {n} document{'s' * (n != 1)}{when}")
    if len(corpus) > 8:
        lines.append(f"- and {len(corpus) - 8} more sources")
    lines += ["", "When they do not answer a question, citewise says so and shows the closest passages. The "
              "settings (the gear beside the input) filter by source, author, date and tags."]
    return "\n".join(lines)


def sources_markdown(rows: list[dict]) -> str:
    """For admins, under the welcome: each synced source's last sync, its result and what it changed
    (``retrieval.sources.listing``), so a failing folder or remote is seen where people already look."""
    if not rows:
        return ""
    lines = ["", "", "**Synced sources** (admins see this):", ""]
    for r in rows:
        c = r["counts"] or {}
        when = f"{r['synced_at']:%Y-%m-%d %H:%M} UTC" if r["synced_at"] else "never synced"
        nxt = f"; next {r['next_run']:%H:%M} UTC" if r["next_run"] else ""
        changed = ", ".join(f"{c[k]} {k}" for k in ("added", "updated", "deleted", "failed") if c.get(k))
        lines.append(f"- **{escape(r['name'])}** ({r['kind']}, {r['documents']} documents): {when}, "
                     f"{escape(r['result'] or 'not yet run')}{' (' + changed + ')' if changed else ''}{nxt}")
        lines += [f"  - {escape(Path(f['file']).name)}: {escape(f['reason'])}" for f in (r["failures"] or [])[:5]]
    return "\n".join(lines)
