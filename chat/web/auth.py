"""Who may log in to the web UI: password users from configuration, or a trusted proxy header.

With no users configured, one user ``demo`` gets a random password generated once and kept (mode 0600) in
``$CITEWISE_HOME/web/demo-password``, so a fresh install is never open with a guessable password.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings, SettingsError

DEMO_USER = "demo"


@dataclass(frozen=True)
class Logins:
    passwords: dict[str, str]
    header: str | None
    demo: bool  # True when the only user is the generated demo user

    def check(self, name: str, password: str) -> bool:
        expected = self.passwords.get(name)
        # compare even for unknown users so timing does not reveal which names exist
        ok = hmac.compare_digest((expected or secrets.token_hex(16)).encode(), password.encode())
        return expected is not None and ok


def _secret_file(path: Path, nbytes: int) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def parse_users(spec: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, password = item.strip().partition(":")
        if not sep or not name or not password:
            raise SettingsError(f"CITEWISE_WEB_USERS: {name or item!r} needs NAME:PASSWORD "
                                "(entries separated by commas)")
        users[name] = password
    return users


def logins(settings: Settings) -> Logins:
    if settings.web.users:
        return Logins(parse_users(settings.web.users), settings.web.auth_header, False)
    password = _secret_file(settings.home / "web" / "demo-password", 12)
    return Logins({DEMO_USER: password}, settings.web.auth_header, True)


def auth_secret(settings: Settings) -> str:
    """The key that signs login sessions: configured, else generated once per home."""
    return settings.web.auth_secret or _secret_file(settings.home / "web" / "auth-secret", 48)
