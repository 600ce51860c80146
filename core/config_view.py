"""The effective settings as a listing: every variable the settings reader reads, the value in effect and where it
came from (the environment, or the default), with secrets masked. ``citewise config`` prints it.

The listing is the reader's own record of its reads (:func:`core.settings.effective`), so it can never name a
variable the reader does not read, nor miss one it does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.settings import Read, effective

MASK = "***"
# user:password@ in any URL, also inside a comma-separated list of URLs
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/@\s:,]*):[^@\s,]*@", re.IGNORECASE)


def mask(value: object) -> object:
    """``value`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", value) if isinstance(value, str) else value


def row(read: Read) -> dict:
    """One variable for display: name, value in effect, source, default, kind, allowed values, secret."""
    shown = (MASK if read.value else None) if read.secret else mask(read.value)
    return {"name": read.name, "value": shown, "source": read.source, "default": mask(read.default),
            "kind": read.kind, "allowed": read.allowed or None, "secret": read.secret}


def rows(environ: Mapping[str, str] | None = None) -> list[dict]:
    """Every variable the settings reader reads, in reading order (raises SettingsError on an invalid value)."""
    return [row(read) for read in effective(environ)[1]]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


def lines(listing: list[dict]) -> list[str]:
    """The listing as ``NAME=value  # source (default ...; allowed)`` lines, one per variable."""
    width = max((len(r["name"]) + len(_text(r["value"])) for r in listing), default=0) + 3
    out = []
    for r in listing:
        note = r["source"]
        details = []
        if r["source"] == "environment" and not r["secret"]:
            details.append(f"default {_text(r['default']) or 'unset'}")
        if r["allowed"]:
            details.append(r["allowed"])
        if details:
            note += f" ({'; '.join(details)})"
        assignment = f"{r['name']}={_text(r['value'])}"
        out.append(f"{assignment:<{width}}# {note}")
    return out
