"""Git sources: a repository (a local path or a clone URL) at a branch, kept as a clone under the home directory.

A sync fetches the branch and checks its head out; the files to read are the diff between the last synced commit
and the head (``git diff --name-only``), so unchanged files cost nothing. When the last commit is not in this
machine's clone (a new worker machine, a force-push), the folder's size-and-time comparison is used instead. Each
file cites ``path@commit`` (the commit that last changed it as synced) and, for GitHub and GitLab remotes, carries
a link to the file at that commit in its metadata (``url``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_HOSTED = re.compile(r"^(?:https://|git@)(github\.com|gitlab\.com)[:/](.+?)(?:\.git)?/?$")


class GitError(RuntimeError):
    """git failed; the message carries git's own first line."""


def is_git_location(location: str) -> bool:
    """A clone URL, or a local folder that is a repository's top."""
    if "://" in location or location.startswith("git@"):
        return True
    return (Path(location).expanduser() / ".git").exists()


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except FileNotFoundError:
        raise GitError("git is not installed; install it (apt install git) to sync git sources") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took more than 10 minutes") from None
    if done.returncode != 0:
        first = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[0]
        raise GitError(f"git {args[0]}: {first}")
    return done.stdout


def checkout(location: str, branch: str | None, clone: Path) -> tuple[str, str]:
    """Clone (first time) or fetch, then check out the branch's head; return (branch, commit). A clone left from
    another repository under the same name (a source removed and added again elsewhere) is replaced, never fetched
    into."""
    if (clone / ".git").exists() and _origin(clone) != location:
        shutil.rmtree(clone)
    if not (clone / ".git").exists():
        clone.parent.mkdir(parents=True, exist_ok=True)
        _git("clone", "--quiet", "--no-tags", "--single-branch", *(["--branch", branch] if branch else []),
             "--", location, str(clone))
    branch = branch or _git("rev-parse", "--abbrev-ref", "HEAD", cwd=clone).strip()
    _git("fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}", cwd=clone)
    commit = _git("rev-parse", f"refs/remotes/origin/{branch}", cwd=clone).strip()
    _git("checkout", "--quiet", "--force", "--detach", commit, cwd=clone)
    _git("clean", "--quiet", "-d", "--force", "-x", cwd=clone)
    return branch, commit


def _origin(clone: Path) -> str | None:
    try:
        return _git("config", "--get", "remote.origin.url", cwd=clone).strip()
    except GitError:
        return None


def changed_since(clone: Path, old: str | None, new: str) -> set[str] | None:
    """Paths (relative) that differ between ``old`` and ``new``; None when ``old`` is unknown here."""
    if not old:
        return None
    try:
        _git("cat-file", "-e", f"{old}^{{commit}}", cwd=clone)
    except GitError:
        return None
    return set(_git("diff", "--name-only", "--no-renames", "-z", old, new, cwd=clone).split("\0")) - {""}


def link(location: str, commit: str, rel: str) -> str | None:
    """The file at that commit on its web host, for GitHub and GitLab remotes."""
    m = _HOSTED.match(location)
    if not m:
        return None
    host, repo = m.groups()
    return f"https://{host}/{repo}/{'-/' if host == 'gitlab.com' else ''}blob/{commit}/{rel}"
