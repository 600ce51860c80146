from __future__ import annotations

import pytest

import prompts
from chat.sampling import PRESETS, Sampling, SamplingError, preset
from prompts import PromptError


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"temperature": -0.1}, "temperature=-0.1 is out of range; expected 0..2"),
        ({"temperature": 2.5}, "out of range"),
        ({"top_p": 1.5}, "top_p=1.5 is out of range; expected 0..1"),
        ({"top_p": 0.0}, "top_p=0 would allow no token"),
        ({"top_k": 0}, "top_k=0 is out of range; expected 1..200"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
        ({"max_tokens": 5}, "max_tokens=5 is out of range"),
        ({"seed": -1}, "seed=-1 is out of range"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"temperature": True}, "temperature must be a number"),
    ],
)
def test_invalid_sampling_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(SamplingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Sampling(**kwargs)


def test_presets_and_overrides() -> None:
    assert set(PRESETS) == {"precise", "balanced", "creative"}
    assert PRESETS["precise"].temperature < PRESETS["balanced"].temperature < PRESETS["creative"].temperature
    tuned = preset("precise").with_overrides(temperature=0.5, top_k=None)
    assert tuned.temperature == 0.5 and tuned.top_k == PRESETS["precise"].top_k and tuned.preset == "custom"
    assert preset("balanced").with_overrides(seed=3).preset == "balanced"
    with pytest.raises(SamplingError, match="unknown preset 'wild'; expected one of: precise, balanced, creative"):
        preset("wild")
    with pytest.raises(SamplingError):
        preset("precise").with_overrides(top_p=3)


def test_prompts_check_their_variables() -> None:
    answer = prompts.load("answer")
    assert answer.variables == {"sources", "question"}
    assert "Question: why?" in answer.render(sources="[1] x", question="why?")
    with pytest.raises(PromptError, match="missing \\['question'\\]"):
        answer.render(sources="x")
    with pytest.raises(PromptError, match="unexpected \\['extra'\\]"):
        answer.render(sources="x", question="q", extra="y")
    with pytest.raises(PromptError, match="no prompt named 'nope'; available: answer, answer-quoted, answer-v1, "
                                          "condense, system, system-v1"):
        prompts.load("nope")
    assert len(answer.version) == 12 and answer.version != prompts.load("condense").version
