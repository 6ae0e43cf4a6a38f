"""A local OpenAI-compatible chat-completions server for tests: every request is recorded and
answered by a script, so a test decides what a misbehaving server does."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = "hang"
"""A script answer: hold the request open until the server stops."""


def chat_reply(content: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


@dataclass
class Request:
    headers: dict[str, str]
    body: dict

    @property
    def images(self) -> list[bytes]:
        parts = self.body["messages"][0]["content"]
        return [
            base64.b64decode(p["image_url"]["url"].split(",", 1)[1])
            for p in parts
            if p["type"] == "image_url"
        ]

    @property
    def text(self) -> str:
        parts = self.body["messages"][0]["content"]
        return "".join(p.get("text", "") for p in parts if p["type"] == "text")


Script = Callable[[int, Request], "tuple[int, dict | str] | str"]
"""``(request number, request) -> (status, JSON body or text) or HANG``."""


@dataclass
class ChatServer:
    script: Script
    delay_s: float = 0.0
    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                request = Request(dict(self.headers), json.loads(self.rfile.read(length)))
                with server._lock:
                    number = len(server.requests)
                    server.requests.append(request)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if self.path != "/v1/chat/completions":
                        self._send(404, {"error": f"no route {self.path}"})
                        return
                    answer = server.script(number, request)
                    if answer == HANG:
                        server._stop.wait(30)
                        return
                    time.sleep(server.delay_s)
                    self._send(*answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): expected
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status: int, body, headers: dict | None = None) -> None:
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
