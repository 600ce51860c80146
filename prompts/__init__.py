"""Prompts live as files beside this module; rendering refuses missing or unexpected variables.

A prompt's version is the hash of its text, recorded with every turn so an answer can be traced to the exact
prompt that produced it.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources


class PromptError(ValueError):
    """A prompt is missing or was rendered with the wrong variables."""


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:12]

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(f for _, f, _, _ in string.Formatter().parse(self.template) if f)

    def render(self, **values: str) -> str:
        missing = self.variables - values.keys()
        extra = values.keys() - self.variables
        if missing or extra:
            raise PromptError(
                f"prompt {self.name!r} takes {sorted(self.variables)}; missing {sorted(missing)}, "
                f"unexpected {sorted(extra)}"
            )
        return self.template.format(**values)


@cache
def load(name: str) -> Prompt:
    """Load ``prompts/NAME.md``."""
    try:
        text = resources.files(__name__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    except FileNotFoundError:
        available = sorted(p.name[:-3] for p in resources.files(__name__).iterdir() if p.name.endswith(".md"))
        raise PromptError(f"no prompt named {name!r}; available: {', '.join(available)}") from None
    return Prompt(name, text)
