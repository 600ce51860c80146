"""Sampling parameters: validated ranges and named presets chosen for grounded answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


class SamplingError(ValueError):
    """A sampling value is out of range; the message gives the allowed range."""


_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "top_k": (1, 200),
    "max_tokens": (16, 4096),
    "seed": (0, 2**31 - 1),
}


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.1
    top_p: float = 0.9
    top_k: int = 20
    max_tokens: int = 512
    seed: int | None = None
    preset: str = "precise"

    def __post_init__(self) -> None:
        for name, (lo, hi) in _RANGES.items():
            value = getattr(self, name)
            if value is None and name == "seed":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SamplingError(f"{name} must be a number in {lo}..{hi}, got {value!r}")
            if name in ("top_k", "max_tokens", "seed") and int(value) != value:
                raise SamplingError(f"{name} must be a whole number in {lo:g}..{hi:g}, got {value!r}")
            if not lo <= value <= hi:
                raise SamplingError(f"{name}={value!r} is out of range; expected {lo:g}..{hi:g}")
        if self.top_p == 0:
            raise SamplingError("top_p=0 would allow no token; use a value in (0, 1], or top_k=1 for greedy")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **values: Any) -> Sampling:
        """A copy with the given values (None means keep); marks the preset 'custom' when anything changed."""
        changes = {k: v for k, v in values.items() if v is not None}
        if not changes:
            return self
        changed = any(getattr(self, k) != v for k, v in changes.items() if k != "seed")
        return replace(self, **changes, preset="custom" if changed else self.preset)


PRESETS: dict[str, Sampling] = {
    "precise": Sampling(temperature=0.1, top_p=0.9, top_k=20, preset="precise"),
    "balanced": Sampling(temperature=0.4, top_p=0.95, top_k=40, preset="balanced"),
    "creative": Sampling(temperature=0.8, top_p=0.98, top_k=80, preset="creative"),
}


def preset(name: str) -> Sampling:
    try:
        return PRESETS[name]
    except KeyError:
        raise SamplingError(f"unknown preset {name!r}; expected one of: {', '.join(PRESETS)}") from None
