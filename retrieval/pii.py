"""PII scrubbing before anything is embedded or stored: typed placeholders, counts per type.

Patterns are anchored on word boundaries and validated (Luhn for cards, mod-97 for IBANs, octet ranges for
IPv4, SSA rules for SSNs) so that look-alikes such as version numbers, dates and order ids are left alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"  # international
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}"  # (555) 123-4567
    r"|\d{3}[.-]\d{3}[.-]\d{4}"  # 555-123-4567
    r"|0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}"  # national with trunk 0: 020 7946 0958, 030 1234567
    r")(?![\w-])"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


_CARD_GROUPS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3)}


def _card_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    groups = tuple(len(g) for g in re.split(r"[ -]", match))
    # printed cards group their digits 4-4-4-4 (or Amex 4-6-5); other groupings (ISBN 3-1-3-5-1) are not cards
    if len(groups) > 1 and groups not in _CARD_GROUPS:
        return False
    return 13 <= len(digits) <= 19 and luhn_ok(digits) and len(set(digits)) > 1


def _ipv4_ok(match: str) -> bool:
    try:
        ip = ipaddress.IPv4Address(match)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)  # 127.0.0.1 and 0.0.0.0 identify no one


def _ipv6_ok(match: str) -> bool:
    if not any(c.isdigit() for c in match):  # C++ scopes such as a::b are valid IPv6 spellings
        return False
    try:
        ip = ipaddress.IPv6Address(match)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_unspecified)


def _phone_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    return 7 <= len(digits) <= 15


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None


_PROTECT_INVALID = {"IBAN", "CARD"}

# Order matters: specific and validated kinds first, so a card number is not taken for a phone number.
RULES = (
    _Rule("EMAIL", EMAIL),
    _Rule("IBAN", IBAN, iban_ok),
    _Rule("CARD", CARD, _card_ok),
    _Rule("SSN", SSN),
    _Rule("IP", IPV4, _ipv4_ok),
    _Rule("IP", IPV6, _ipv6_ok),
    _Rule("PHONE", PHONE, _phone_ok),
)


def scrub(text: str) -> tuple[str, Counter[str]]:
    """Replace PII with ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``, ``[SSN]``, ``[IP]``; count each kind.

    Rules claim spans of the original text in order. A span shaped like an IBAN or a card number that fails its
    checksum is claimed as *not* PII, so a later, looser rule (phone numbers) cannot take a piece of it.
    """
    claimed: list[tuple[int, int, str | None]] = []  # (start, end, kind or None for a protected look-alike)
    for rule in RULES:
        for m in rule.pattern.finditer(text):
            start, end = m.span()
            if any(start < e and s < end for s, e, _ in claimed):
                continue
            if rule.valid is None or rule.valid(m.group(0)):
                claimed.append((start, end, rule.kind))
            elif rule.kind in _PROTECT_INVALID:
                claimed.append((start, end, None))
    counts: Counter[str] = Counter()
    out, pos = [], 0
    for start, end, kind in sorted(claimed):
        if kind is None:
            continue
        out.append(text[pos:start])
        out.append(f"[{kind}]")
        counts[kind] += 1
        pos = end
    out.append(text[pos:])
    return "".join(out), counts
