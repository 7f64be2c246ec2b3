"""A minimal OpenAI-compatible HTTP server for tests, whose behaviour the test controls."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIALOGUE = "Ann | Hi there! | 2\nBo | Oh no. | 4\nAnn | Come on. | 1\nBo | Fine. | 1\n"


class Server:
    """A minimal OpenAI-compatible server whose behaviour the test controls."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.failures_left = 0
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError):  # the client gave up (the timeout test)
                    self.wfile.write(body)

            def do_GET(self):
                self._send(200, b'{"data": [{"id": "test-model"}]}')

            def do_POST(self):
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                payload["auth"] = self.headers.get("Authorization")
                server.requests.append(payload)
                if server.failures_left > 0:
                    server.failures_left -= 1
                    return self._send(500, b'{"error": "overloaded"}')
                if server.mode == "slow":
                    time.sleep(1.5)
                if server.mode == "bytes":
                    body = b'{"choices": [{"text": "Ann | caf\xff\xfe | 1\\nBo | x | 1"}], "usage": {}}'
                    return self._send(200, body)
                if server.mode == "garbage":
                    return self._send(200, b"<html>not json</html>")
                # The seed varies the text so that a workflow run yields no duplicates.
                text = DIALOGUE.replace("Hi there", f"Hi there {payload.get('seed')}")
                choice = (
                    {"message": {"role": "assistant", "content": text}} if "messages" in payload else {"text": text}
                )
                body = {"choices": [choice], "usage": {"prompt_tokens": 11, "completion_tokens": 22}}
                self._send(200, json.dumps(body).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
