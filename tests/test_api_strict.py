"""A JSON true/false is not a number: sampling values reach the model only as the numbers the client sent
(schemathesis found "seed": false accepted as seed 0 in a fresh CI run)."""

from __future__ import annotations

import pydantic
import pytest

from chat.api.openai_compat import ChatIn
from chat.api.routes import AskIn


@pytest.mark.parametrize("field", ["seed", "top_k", "max_tokens", "temperature", "top_p"])
def test_booleans_are_refused_where_numbers_belong(field: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        AskIn(question="q", sampling={field: False})
    with pytest.raises(pydantic.ValidationError):
        ChatIn(messages=[{"role": "user", "content": "q"}], **{field: True})
    assert AskIn(question="q", sampling={"temperature": 1, "seed": 3}).sampling.temperature == 1.0
