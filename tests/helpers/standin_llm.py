"""A local stand-in for an OpenAI-compatible server: /v1/models and /v1/chat/completions (SSE streaming too).

It speaks the real wire protocol so the real ``openai``/LangChain clients talk to it; tests script its replies
and read back the requests it received.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], str]


class _Quiet(ThreadingHTTPServer):
    """A client that hangs up (a load test ending, a cancelled stream) is normal here, not a traceback."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StandIn:
    def __init__(self, reply: Reply | str = "OK [1].", *, fail_after_chunks: int | None = None,
                 delay_s: float = 0.0) -> None:
        self.reply: Reply = reply if callable(reply) else (lambda _req, text=reply: text)
        self.fail_after_chunks = fail_after_chunks
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []
        self._server = _Quiet(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": "standin", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._json(404, {"error": {"message": "not found"}})
                    return
                standin.requests.append(body)
                text = standin.reply(body)
                created = int(time.time())
                if not body.get("stream"):
                    self._json(200, {"id": "cmpl-1", "object": "chat.completion", "created": created,
                                     "model": body.get("model", "standin"),
                                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                  "finish_reason": "stop"}],
                                     "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                pieces = [text[i:i + 4] for i in range(0, len(text), 4)]
                for n, piece in enumerate(pieces):
                    if standin.fail_after_chunks is not None and n == standin.fail_after_chunks:
                        self.close_connection = True
                        self.connection.shutdown(2)  # the server dies mid-stream: no final chunk
                        return
                    chunk = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": created,
                             "model": body.get("model", "standin"),
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    if standin.delay_s:
                        time.sleep(standin.delay_s)
                done = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": created,
                        "model": body.get("model", "standin"),
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self._chunk(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
                self._chunk(b"")

        return Handler


_SOURCE = re.compile(r'<source id="(\d+)"[^>]*>\n?(.*?)</source>', re.DOTALL)
_WORD = re.compile(r"[a-z0-9]{3,}")


def grounded_reply(req: dict[str, Any], sentences: int = 1) -> str:
    """A stand-in that behaves like a careful model: answers with the ``sentences`` sentences of the sources that
    share the most words with the question, each citing its source; condenses a follow-up by joining it to the
    first question."""
    prompt = req["messages"][-1]["content"]
    if "Standalone question:" in prompt:
        first = re.search(r"^User: (.*)$", prompt, re.M)
        last = re.search(r"^Last question: (.*)$", prompt, re.M)
        return f"{last.group(1) if last else ''} (about: {first.group(1) if first else ''})".strip()
    question = (prompt.rsplit("Question:", 1)[-1].strip().splitlines() or [""])[0]
    wanted = set(_WORD.findall(question.lower()))
    scored = []
    for number, text in _SOURCE.findall(prompt):
        for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
            score = len(wanted & set(_WORD.findall(sentence.lower())))
            if score and len(sentence) > 20:
                scored.append((-score, len(scored), number, sentence.strip().rstrip(".")))
    if not scored:
        return "The sources do not contain the answer."
    return " ".join(f"{text} [{number}]." for _, _, number, text in sorted(scored)[:sentences])


def grounded_sentences(n: int):
    """:func:`grounded_reply` answering with the ``n`` best sentences (to watch an answer stream sentence by
    sentence)."""
    return lambda req: grounded_reply(req, n)


if __name__ == "__main__":  # a stand-in server for trying the UI by hand: python tests/openai_standin.py PORT
    import sys

    server = StandIn(grounded_reply)
    server._server.server_close()
    server._server = _Quiet(("127.0.0.1", int(sys.argv[1])), server._handler())
    print(f"stand-in LLM at http://127.0.0.1:{sys.argv[1]}/v1", flush=True)
    server._server.serve_forever()
