"""Cleaning: HTML to structured text without boilerplate, and whitespace normalisation."""

from __future__ import annotations

import re
import unicodedata

_BOILERPLATE = ["script", "style", "noscript", "nav", "footer", "header", "aside", "form", "iframe", "svg",
                "template", "button"]
_BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo", "search", "complementary"}
_BLOCKS = ["p", "div", "section", "article", "main", "li", "tr", "pre", "blockquote", "table", "ul", "ol",
           "dl", "dt", "dd", "figure", "figcaption", "br", "hr"]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")


def plain(text: str) -> str:
    """Text PostgreSQL can store and a model can read, otherwise unchanged: lone surrogates (which no UTF-8 can
    carry) become U+FFFD and control characters other than tab and newlines are removed. For what users type;
    a NUL in a question once reached the database as an error."""
    if text.isprintable():
        return text
    return _CONTROL.sub("", text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


def normalize(text: str) -> str:
    """NFC, no control characters, single spaces, at most one blank line, stripped lines."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """Return (title, text) of an HTML page: boilerplate dropped, headings kept as Markdown ``#`` lines.

    Keeping headings as Markdown lets the chunker record each chunk's heading path for HTML as for Markdown.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_BOILERPLATE):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": True}):
        if str(tag.get("role", "")).lower() in _BOILERPLATE_ROLES:
            tag.decompose()
    if soup.head:
        soup.head.decompose()
    for level in range(1, 7):
        for tag in soup.find_all(f"h{level}"):
            tag.replace_with(f"\n\n{'#' * level} {tag.get_text(' ', strip=True)}\n\n")
    for tag in soup.find_all(_BLOCKS):
        tag.insert_before("\n\n" if tag.name not in {"li", "tr", "br", "dt", "dd"} else "\n")
        tag.insert_after("\n")
    text = normalize(soup.get_text())
    if not title:
        first = re.search(r"^# (.+)$", text, re.MULTILINE)
        title = first.group(1) if first else ""
    return title, text
