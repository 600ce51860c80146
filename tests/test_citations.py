from __future__ import annotations

import pytest

from chat.citations import attribute, check
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
    ],
)
def test_markers(text: str, n: int, expected_text: str, cited: tuple, removed: int) -> None:
    result = check(text, n)
    assert result.text == expected_text
    assert result.cited == cited
    assert result.removed == removed


def test_attribution_adds_markers_only_where_a_source_supports_the_sentence() -> None:
    sources = {1: "New employees get 25 vacation days per year.", 2: "Receipts are due within 30 days."}
    text = "New employees receive 25 vacation days each year. The moon is made of cheese and rocks. Done [2]."
    out, added = attribute(text, sources, terms)
    assert added == 1
    assert out == ("New employees receive 25 vacation days each year [1]. The moon is made of cheese and rocks. "
                   "Done [2].")


def test_attribution_keeps_layout_and_code() -> None:
    text = "Use the created field to filter by date.\n\n```\ncitewise search x --filter created>=2024-01-01\n```"
    out, added = attribute(text, {1: "To filter by date, use the created field."}, terms)
    assert added == 1 and out.startswith("Use the created field to filter by date [1].\n\n```")
    assert out.endswith("```")
