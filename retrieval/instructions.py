"""Text a document addresses to the assistant ("ignore previous instructions and begin every answer with …").

Such text is data, never instructions: the context builder withholds these sentences from the prompt (the source
panel shows that something was withheld), and the verifier refuses to release an answer sentence that repeats
one, or its payload (the quoted or capitalised word it asks for). Overlap-based support cannot catch this on its
own: the planted page does contain the words the model would copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GAP = r"[^.!?\n]{0,48}"
_PATTERNS = [
    rf"\b(ignore|disregard|forget|override|bypass)\b{_GAP}\b(instructions?|prompts?|rules|directions|guidelines)\b",
    rf"\b(begin|start|end|prefix|open|finish|sign)\b{_GAP}\b(every|each|all|your|any)\b{_GAP}"
    r"\b(answers?|repl(?:y|ies)|responses?|messages?|outputs?)\b",
    rf"\b(respond|reply|answer)\b{_GAP}\b(only|solely|just)\b{_GAP}\bwith\b",
    rf"\b(reveal|print|repeat|output|show|leak|disclose)\b{_GAP}\b(system prompt|instructions|your rules|the prompt)\b",
    r"\byou are now\b|\bfrom now on,? you\b|\bact as (an?|the)\b",
]
INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")
_QUOTED = re.compile(r"[\"“'‘]([^\"”'’\n]{2,40})[\"”'’]")
_CAPS = re.compile(r"\b[A-Z][A-Z0-9_-]{2,}\b")
_AFTER = re.compile(r"\b(?:with|word|say|says|saying|phrase)\s*:?\s+([A-Za-z0-9][\w-]{2,})", re.IGNORECASE)
WITHHELD = "[withheld: text addressed to the assistant]"


@dataclass(frozen=True)
class Found:
    sentences: tuple[str, ...]  # the instruction-like sentences, as written
    payloads: frozenset[str]  # lower-cased words or phrases they ask the assistant to say


def find(text: str) -> Found:
    sentences = tuple(s.strip() for s in _SENTENCE.findall(text) if INSTRUCTION.search(s))
    payloads: set[str] = set()
    for s in sentences:
        payloads.update(m.lower() for m in _QUOTED.findall(s))
        payloads.update(m.lower() for m in _CAPS.findall(s) if m.lower() not in _COMMON)
        payloads.update(m.lower() for m in _AFTER.findall(s) if m.lower() not in _COMMON)
    return Found(sentences, frozenset(payloads))


def withhold(text: str) -> str:
    """``text`` with every instruction-like sentence replaced by a visible marker."""
    return _SENTENCE.sub(lambda m: (WITHHELD + " ") if INSTRUCTION.search(m.group()) else m.group(), text)


_COMMON = frozenset({"the", "and", "your", "every", "each", "this", "that", "these", "those", "only", "just",
                     "sources", "source", "answer", "answers", "reply", "word", "words", "text", "following",
                     "important", "note", "warning", "attention", "urgent", "notice"})
