from __future__ import annotations

import pytest

from chat.engine.citations import check, repair, ungrounded_share
from retrieval.keywords import terms


@pytest.mark.parametrize(
    "text,n,expected_text,cited,removed",
    [
        ("Paris is the capital [1].", 3, "Paris is the capital [1].", (1,), 0),
        ("A [1][2] and B [2].", 3, "A [1][2] and B [2].", (1, 2), 0),
        ("A [1, 2].", 3, "A [1][2].", (1, 2), 0),
        ("A [1,3] B.", 3, "A [1][3] B.", (1, 3), 0),
        ("A [12].", 3, "A.", (), 1),
        ("A [12] B [2].", 3, "A B [2].", (2,), 1),
        ("A [1, 7].", 3, "A [1].", (1,), 1),
        ("A [0].", 3, "A.", (), 1),
        ("A [2-3].", 3, "A [2][3].", (2, 3), 0),
        ("No citations here.", 3, "No citations here.", (), 0),
        ("See [3] then [1] then [3].", 3, "See [3] then [1] then [3].", (3, 1), 0),
        ("Array x[1] style [a] [ 2 ].", 2, "Array x[1] style [a] [2].", (1, 2), 0),
        ("Anything [1].", 0, "Anything.", (), 1),
        ("It is stored. [2] Then done. [1][3]", 3, "It is stored [2]. Then done [1][3].", (2, 1, 3), 0),
        ("It was 7.4% [1]. [2]", 3, "It was 7.4% [1][2].", (1, 2), 0),
    ],
)
def test_markers(text: str, n: int, expected_text: str, cited: tuple, removed: int) -> None:
    result = check(text, n)
    assert result.text == expected_text
    assert result.cited == cited
    assert result.removed == removed


def test_repair_adds_markers_only_where_a_source_supports_the_sentence() -> None:
    sources = {1: "New employees get 25 vacation days per year.", 2: "Receipts are due within 30 days."}
    text = "New employees receive 25 vacation days each year. The moon is made of cheese and rocks. Done [2]."
    r = repair(text, sources, terms)
    assert (r.added, r.corrected) == (1, 0)
    assert r.text == ("New employees receive 25 vacation days each year [1]. The moon is made of cheese and rocks. "
                      "Done [2].")


def test_repair_corrects_a_marker_pointing_at_the_wrong_source() -> None:
    sources = {1: "The grinder has 14 settings. Setting 6 suits most espresso beans.",
               3: "The kitchen closes at 6 pm on weekdays."}
    r = repair("The grinder has 14 settings [1]. Setting 6 suits most espresso beans [3].", sources, terms)
    assert (r.added, r.corrected) == (0, 1)
    assert r.text == "The grinder has 14 settings [1]. Setting 6 suits most espresso beans [1]."
    unsupported = "Espresso is best at 93 degrees [3]."
    assert repair(unsupported, sources, terms).text == unsupported, "no source supports it: left as written"


def test_repair_keeps_layout_and_code() -> None:
    text = "Use the created field to filter by date.\n\n```\ncitewise search x --filter created>=2024-01-01\n```"
    r = repair(text, {1: "To filter by date, use the created field."}, terms)
    assert r.added == 1 and r.text.startswith("Use the created field to filter by date [1].\n\n```")
    assert r.text.endswith("```")


def test_ungrounded_share_flags_answers_about_concepts_no_source_has() -> None:
    sources = ["The Zephyr-9 must be descaled every 200 cups."]
    q = "What is the capacity in litres of the Zephyr-9 water tank?"
    assert ungrounded_share(q, "The capacity in litres of the Zephyr-9 water tank is 200 cups [1].", sources,
                            terms) > 0.5
    q2 = "How often must the Zephyr-9 be descaled?"
    assert ungrounded_share(q2, "The Zephyr-9 must be descaled every 200 cups [1].", sources, terms) == 0.0


def test_best_support_flags_answers_from_nowhere() -> None:
    from chat.engine.citations import best_support
    from retrieval import keywords

    sources = ["Meals on business trips are reimbursed up to 40 euros per day with receipts."]
    assert best_support("Invoices are sent monthly [1].", sources, keywords.terms) == 0.0
    assert best_support("Meals are reimbursed up to 40 euros per day [1].", sources, keywords.terms) == 1.0
    assert best_support("Yes [1].", sources, keywords.terms) == 1.0  # too short to judge


@pytest.mark.parametrize("marker,expected", [("[1]", (1,)), ("[1, 2]", (1, 2)), ("[1-3]", (1, 2, 3)),
                                             ("[1–3]", (1, 2, 3)), ("[ 2 ]", (2,)), ("[3-1]", (3, 1)),
                                             ("[1-40]", (1, 40)), ("1, 4-5", (1, 4, 5))])
def test_one_marker_grammar_expands_ranges(marker: str, expected: tuple) -> None:
    from chat.engine.citations import MARKER, numbers
    assert numbers(marker) == expected
    assert not marker.startswith("[") or MARKER.fullmatch(marker)


def test_cited_numbers_in_order_of_first_mention() -> None:
    from chat.engine.citations import MARKER, cited_numbers
    assert cited_numbers("A [2-3]. B [1, 2]. C [1]. x[a] [ ]") == (2, 3, 1)
    assert not MARKER.search("[a] [ ] [,] [1 2]")
