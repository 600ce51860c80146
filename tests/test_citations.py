from __future__ import annotations

import pytest

from chat.citations import check


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
    ],
)
def test_markers(text: str, n: int, expected_text: str, cited: tuple, removed: int) -> None:
    result = check(text, n)
    assert result.text == expected_text
    assert result.cited == cited
    assert result.removed == removed
