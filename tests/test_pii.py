from __future__ import annotations

import pytest

from retrieval.pii import iban_ok, luhn_ok, scrub


@pytest.mark.parametrize(
    "text,kind",
    [
        ("write to jane.doe+hr@example.co.uk today", "EMAIL"),
        ("call +44 20 7946 0958 now", "PHONE"),
        ("call (555) 123-4567 now", "PHONE"),
        ("call 555-123-4567 now", "PHONE"),
        ("ruf an: +49 30 12345678", "PHONE"),
        ("appelez le +33 1 23 45 67 89", "PHONE"),
        ("card 4111 1111 1111 1111 expires", "CARD"),
        ("card 5500-0000-0000-0004 expires", "CARD"),
        ("card 378282246310005 expires", "CARD"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN"),
        ("IBAN DE89370400440532013000 please", "IBAN"),
        ("SSN 123-45-6789 on file", "SSN"),
        ("server 192.168.10.20 is down", "IP"),
        ("server 2001:db8:85a3::8a2e:370:7334 is down", "IP"),
    ],
)
def test_pii_is_replaced_by_typed_placeholder(text: str, kind: str) -> None:
    scrubbed, counts = scrub(text)
    assert f"[{kind}]" in scrubbed
    assert counts[kind] == 1
    assert sum(counts.values()) == 1, f"only {kind} found, got {counts}"


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "IBAN GB82 WEST 1234 5698 7654 33 has a bad checksum",
        "version 10.0.300.1 is not an address",
        "released on 2024-01-15 at 12:30:45",
        "order 12345 shipped, ISBN 978-3-16-148410-0",
        "the ratio was 3.14 and p < 0.05 in 1999-2004",
        "std::vector and a::b are C++ scopes",
        "SSN-like 000-12-3456 and 666-12-3456 are invalid",
        "email-like user@localhost has no domain",
        "it listens on 127.0.0.1 and 0.0.0.0 and ::1",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    scrubbed, counts = scrub(text)
    assert scrubbed == text
    assert not counts


def test_counts_add_up_over_mixed_text() -> None:
    text = "a@b.io, c@d.org; 4111111111111111; 10.0.0.1 and 10.0.0.2"
    scrubbed, counts = scrub(text)
    assert counts == {"EMAIL": 2, "CARD": 1, "IP": 2}
    assert "@" not in scrubbed


def test_checksums() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("GB82WEST12345698765431")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_and_recall_on_a_generated_labelled_set(seed) -> None:
    from evals.pii_eval import generate, score

    examples = generate(300, seed)
    result = score(examples)
    assert result["examples"] == 300 and result["look_alikes"] >= 90
    assert {"email", "phone", "card", "iban", "ssn", "ip"} <= set(result["per_type"])
    assert result["precision"] >= 0.95 and result["recall"] >= 0.95, result


def test_invalid_iban_and_isbn_are_not_cut_into_phone_or_card_numbers() -> None:
    assert scrub("Ref DE40 0139 9161 5109 0321 73 here")[0] == "Ref DE40 0139 9161 5109 0321 73 here"
    assert scrub("ISBN 978-4-948-09141-8")[0] == "ISBN 978-4-948-09141-8"
    assert scrub("Server 203.0.113.9.")[0] == "Server [IP]."
