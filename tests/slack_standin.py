"""A local stand-in for the Slack Web API (the methods the bot calls) and for response_url hooks.

slack_sdk's WebClient is pointed at it with ``base_url``; every call is recorded for the tests to read.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


class SlackStandIn:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self._ts = 1_700_000_000.000100
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        # channel history for Slack sources: {channel: {"threads": {ts: [parent, *replies]}, "members": [...]}}
        self.channels: dict[str, dict[str, Any]] = {}
        self.page_size = 2  # small pages, so callers must follow next_cursor as they must with Slack

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    @property
    def response_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/respond/1"

    def __enter__(self) -> SlackStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of(self, method: str) -> list[dict[str, Any]]:
        return [params for m, params, _ in self.calls if m == method]

    def wait_for(self, predicate, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; calls so far: {[m for m, _, _ in self.calls]}")

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            return f"{self._ts:.6f}"

    def _reply(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://example.slack.com/", "team": "T", "user": "citewise",
                    "team_id": "T1", "user_id": "UBOT", "bot_id": "BBOT"}
        if method == "chat.postMessage":
            p["_ts"] = self._next_ts()  # kept on the recorded call, so tests can follow that message's updates
            return {"ok": True, "channel": p.get("channel"), "ts": p["_ts"], "message": {"text": p.get("text")}}
        if method == "chat.update":
            return {"ok": True, "channel": p.get("channel"), "ts": p.get("ts"), "text": p.get("text")}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1", **(p.get("view") or {})}}
        if method in ("conversations.history", "conversations.members") or (
                method == "conversations.replies" and p.get("channel") in self.channels):
            return self._channel(method, p)
        if method == "conversations.replies":
            return {"ok": True, "messages": [], "has_more": False}
        return {"ok": False, "error": "unknown_method"}

    def _channel(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        ch = self.channels.get(p.get("channel", ""))
        if ch is None:
            return {"ok": False, "error": "channel_not_found"}
        if method == "conversations.history":
            items, key = [dict(t[0], reply_count=len(t) - 1, **({"latest_reply": t[-1]["ts"]} if len(t) > 1 else {}))
                          for _, t in sorted(ch["threads"].items(), reverse=True)], "messages"
        elif method == "conversations.members":
            items, key = list(ch["members"]), "members"
        else:
            items, key = list(ch["threads"].get(p.get("ts"), [])), "messages"
        start = int(p.get("cursor") or 0)
        page = items[start:start + self.page_size]
        more = start + self.page_size < len(items)
        return {"ok": True, key: page, "has_more": more,
                "response_metadata": {"next_cursor": str(start + self.page_size) if more else ""}}

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(raw or "{}")
                else:
                    params = dict(parse_qsl(raw))
                for key in ("view", "blocks"):
                    if isinstance(params.get(key), str):
                        params[key] = json.loads(params[key])
                if self.path.startswith("/respond/"):
                    standin.calls.append(("response_url", params, time.time()))
                    body = b"ok"
                else:
                    method = self.path.rsplit("/", 1)[-1]
                    standin.calls.append((method, params, time.time()))
                    body = json.dumps(standin._reply(method, params)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
