"""An answer as Slack shows it: mrkdwn with escaped text, numbered sources as links, and feedback buttons.

Slack treats ``<...>`` as links and mentions (``<!channel>``, ``<@U…>``, ``<http://x|label>``): every text from a
document or the model is escaped (&, <, >) so none of it can ping people or disguise a link.
"""

from __future__ import annotations

import re

from chat.types import Answer, Citation

MAX_SECTION = 2900  # Slack's limit for a section's text is 3000 characters
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Markdown from the model → Slack mrkdwn (bold), escaped."""
    return _BOLD.sub(r"*\1*", escape(text))


def _label(text: str) -> str:
    return escape(text).replace("|", "¦")[:150] or "source"


def source_line(c: Citation) -> str:
    warning = " · :warning: text addressed to the assistant was withheld" if c.withheld else ""
    if re.match(r"https?://", c.uri) and not re.search(r"[\s<>|]", c.uri):
        return f"[{c.number}] <{c.uri}|{_label(c.title or c.source)}> · {escape(c.source)}{warning}"
    return (f"[{c.number}] *{_label(c.title or c.source)}* · {escape(c.source)} · `{escape(c.uri)[-120:]}`"
            + warning)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SECTION else text[:MAX_SECTION - 1] + "…"


def answer_blocks(answer: Answer) -> list[dict]:
    listed = answer.citations or (answer.sources if answer.abstained else ())
    head = f":warning: *Not found in the sources.* {escape(answer.text)}" if answer.abstained else mrkdwn(answer.text)
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": _clip(head)}}]
    if listed:
        title = "*Closest sources* (they do not answer the question)" if answer.abstained else "*Sources*"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(
            title + "\n" + "\n".join(source_line(c) for c in listed))}})
    if answer.turn_id:
        blocks.append({"type": "actions", "block_id": "feedback", "elements": [
            {"type": "button", "action_id": "feedback_up", "value": answer.turn_id,
             "text": {"type": "plain_text", "text": "👍 Helpful", "emoji": True}},
            {"type": "button", "action_id": "feedback_down", "value": answer.turn_id,
             "text": {"type": "plain_text", "text": "👎 Not helpful", "emoji": True}}]})
    return blocks


def fallback_text(answer: Answer) -> str:
    """The notification text (and what clients without blocks show)."""
    return escape(answer.text)[:MAX_SECTION]


def feedback_modal(turn_id: str, feedback_id: int, sources: list[tuple[int, str]]) -> dict:
    import json

    blocks: list[dict] = [{"type": "input", "block_id": "comment", "optional": True,
                           "label": {"type": "plain_text", "text": "What was wrong?"},
                           "element": {"type": "plain_text_input", "action_id": "text", "multiline": True,
                                       "max_length": 2000}}]
    if sources:
        blocks.append({"type": "input", "block_id": "citation", "optional": True,
                       "label": {"type": "plain_text", "text": "Which source (optional)"},
                       "element": {"type": "static_select", "action_id": "number", "options": [
                           {"text": {"type": "plain_text", "text": f"[{n}] {title}"[:75]}, "value": str(n)}
                           for n, title in sources]}})
    return {"type": "modal", "callback_id": "feedback_modal",
            "private_metadata": json.dumps({"turn_id": turn_id, "feedback_id": feedback_id}),
            "title": {"type": "plain_text", "text": "Feedback"}, "submit": {"type": "plain_text", "text": "Send"},
            "close": {"type": "plain_text", "text": "Cancel"}, "blocks": blocks}
