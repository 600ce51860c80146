"""The web UI's settings panel as data: the widgets to show, and the panel's values turned into what a turn uses.

Kept apart from the Chainlit handlers so the translation (preset vs. sliders, filters from form fields) is plain,
tested Python, and the handlers only orchestrate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat.sampling import PRESETS, Sampling, SamplingError, preset
from retrieval import filters as grammar
from retrieval.filters import Filter, FilterError


class PanelError(ValueError):
    """A settings value cannot be used; the message names the field and what it accepts."""


@dataclass(frozen=True)
class Choices:
    """What the panel asks of the next turn."""

    sampling: Sampling
    sources: int
    filters: list[Filter] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # the panel as shown (kept on the thread for resume)


def defaults(preset_name: str, sources: int) -> dict[str, Any]:
    p = preset(preset_name)
    return {"preset": p.preset, "temperature": p.temperature, "top_p": p.top_p, "top_k": p.top_k,
            "sources": sources, "filter_sources": [], "author": "", "date_from": "", "date_to": "", "tags": []}


def widgets(values: dict[str, Any], source_names: list[str], max_sources: int) -> list[Any]:
    """Chainlit input widgets showing ``values``; source choices are the sources in the database, and the sources
    slider stops at the desk's limit (CITEWISE_MAX_SOURCES)."""
    from chainlit.input_widget import MultiSelect, Select, Slider, Tags, TextInput

    names = list(PRESETS)
    shown = values["preset"] if values["preset"] in names else names[0]
    return [
        Select(id="preset", label="Preset", values=names, initial_value=shown,
               description="Sets temperature, top-k and top-p together; moving a slider makes it custom."),
        Slider(id="temperature", label="Temperature", initial=values["temperature"], min=0, max=2, step=0.1),
        Slider(id="top_k", label="Top-k", initial=values["top_k"], min=1, max=200, step=1),
        Slider(id="top_p", label="Top-p", initial=values["top_p"], min=0.05, max=1, step=0.05),
        Slider(id="sources", label="Number of sources", initial=values["sources"], min=1, max=max_sources, step=1),
        MultiSelect(id="filter_sources", label="Sources",
                    items={s: s for s in source_names}, initial=values["filter_sources"],
                    description="Search only these sources (none selected: all)."),
        TextInput(id="author", label="Author", initial=values["author"], placeholder="any author"),
        TextInput(id="date_from", label="Updated from", initial=values["date_from"], placeholder="YYYY-MM-DD"),
        TextInput(id="date_to", label="Updated until", initial=values["date_to"], placeholder="YYYY-MM-DD"),
        Tags(id="tags", label="Tags (any of)", initial=values["tags"]),
    ]


def _number(values: dict[str, Any], name: str) -> float:
    try:
        return float(values[name])
    except (TypeError, ValueError, KeyError):
        raise PanelError(f"{name} must be a number, got {values.get(name)!r}") from None


def apply(values: dict[str, Any], previous: dict[str, Any], max_sources: int) -> Choices:
    """The panel's new values → the next turns' choices.

    Choosing another preset resets the sliders to it; otherwise slider values that differ from the preset make the
    sampling 'custom'. The returned ``values`` are what the panel should now show.
    """
    merged = {**previous, **{k: v for k, v in values.items() if k in previous}}
    try:
        if merged["preset"] != previous["preset"] and merged["preset"] in PRESETS:
            p = preset(merged["preset"])
            merged.update(temperature=p.temperature, top_p=p.top_p, top_k=p.top_k)
            sampling = p
        else:
            base = preset(merged["preset"]) if merged["preset"] in PRESETS else preset(previous["preset"])
            sampling = base.with_overrides(temperature=round(_number(merged, "temperature"), 3),
                                           top_p=round(_number(merged, "top_p"), 3),
                                           top_k=int(_number(merged, "top_k")))
    except SamplingError as exc:
        raise PanelError(str(exc)) from None
    sources = int(_number(merged, "sources"))
    if not 1 <= sources <= max_sources:
        raise PanelError(f"number of sources must be 1..{max_sources}, got {sources}")
    merged["preset"] = sampling.preset if sampling.preset in PRESETS else merged["preset"]
    return Choices(sampling, sources, to_filters(merged), merged)


def to_filters(values: dict[str, Any]) -> list[Filter]:
    """Form fields → the filter grammar's conditions (validated the same way as ``--filter``)."""
    out: list[Filter] = []
    try:
        if values.get("filter_sources"):
            out.append(grammar.make("source", "in", list(values["filter_sources"])))
        if str(values.get("author") or "").strip():
            out.append(grammar.make("author", "=", values["author"]))
        if str(values.get("date_from") or "").strip():
            out.append(grammar.make("updated", ">=", values["date_from"]))
        if str(values.get("date_to") or "").strip():
            out.append(grammar.make("updated", "<=", f"{str(values['date_to']).strip()}T23:59:59"
                                    if len(str(values["date_to"]).strip()) == 10 else values["date_to"]))
        if values.get("tags"):
            out.append(grammar.make("tags", "in", list(values["tags"])))
    except FilterError as exc:
        raise PanelError(str(exc)) from None
    return out
