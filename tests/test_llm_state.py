"""The managed LLM server is judged by its process, not by a health check a busy server can miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

from chat.engine.llm import running_server


def test_a_busy_server_is_still_the_running_one_and_a_dead_one_is_not(settings, tmp_path) -> None:
    cfg = replace(settings.llm, state_dir=tmp_path)
    state = tmp_path / "server.json"
    state.write_text(json.dumps({"pid": os.getpid(), "base_url": "http://127.0.0.1:9/v1", "model": "m"}))
    assert running_server(cfg) == "http://127.0.0.1:9/v1", "alive but not answering HTTP: busy, not dead"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state.write_text(json.dumps({"pid": gone.pid, "base_url": "http://127.0.0.1:9/v1", "model": "m"}))
    assert running_server(cfg) is None
