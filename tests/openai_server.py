"""A minimal OpenAI-compatible HTTP server for tests, whose behaviour the test controls."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import require_workflow_mark

DIALOGUE = "Ann | Hi there! | 2\nBo | Oh no. | 4\nAnn | Come on. | 1\nBo | Fine. | 1\n"


def as_asked(dialogue: str, payload: dict) -> str:
    """The dialogue between the speakers the prompt names (as a model that follows it would write),
    continuing a completion prompt's response prefix ("Alex |") where there is one."""
    prompt = payload.get("prompt") or "\n".join(str(m.get("content", "")) for m in payload.get("messages", []))
    asked = re.findall(r"Speakers: ([^\n]+?)\.\n", prompt + "\n") or re.findall(
        r"between (.+?), with \d+ utter", prompt
    )
    if asked:
        names = [n.strip() for n in asked[-1].split(",")]
        dialogue = dialogue.replace("Ann |", f"{names[0]} |").replace("Bo |", f"{names[-1]} |")
        if prompt.rstrip().endswith(f"{names[0]} |"):
            dialogue = dialogue.split("|", 1)[1]
    return dialogue


ROUTES = {"/v1/completions": "completion", "/v1/chat/completions": "chat"}
# Fields per endpoint, as the OpenAI API defines them: required ones, and every one we accept.
REQUIRED = {"completion": {"model", "prompt"}, "chat": {"model", "messages"}}
OPTIONAL = {"max_tokens", "temperature", "top_p", "seed", "stop", "n", "stream"}
# Server extensions: vLLM's guided_regex and repetition_penalty, the llama.cpp server's grammar and
# repeat_penalty (the OpenAI API itself has none of them, so an unknown server gets none).
OPTIONAL |= {"guided_regex", "grammar", "repetition_penalty", "repeat_penalty"}
TYPES = {
    "model": str,
    "prompt": str,
    "messages": list,
    "max_tokens": int,
    "temperature": (int, float),
    "top_p": (int, float),
    "seed": int,
    "stop": (str, list),
    "guided_regex": str,
    "grammar": str,
    "repetition_penalty": (int, float),
    "repeat_penalty": (int, float),
}


def payload_problem(kind: str, payload: object) -> str | None:
    """What a real server would answer 400 for: missing, unknown or mistyped fields."""
    if not isinstance(payload, dict):
        return "body must be a JSON object"
    missing = REQUIRED[kind] - set(payload)
    unknown = set(payload) - REQUIRED[kind] - OPTIONAL
    if missing or unknown:
        return f"{kind}: missing {sorted(missing)}, unknown {sorted(unknown)}"
    for key, typ in TYPES.items():
        if key in payload and (not isinstance(payload[key], typ) or isinstance(payload[key], bool)):
            return f"{kind}: field {key!r} has the wrong type"
    if kind == "chat" and not all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        for m in payload["messages"]
    ):
        return "chat: each message needs a role and a string content"
    return None


class Server:
    """A minimal OpenAI-compatible server whose behaviour the test controls."""

    def __init__(self) -> None:
        require_workflow_mark("the OpenAI-compatible test server")
        self.mode = "ok"
        self.failures_left = 0
        self.release = threading.Event()  # mode "hang": requests wait for it (the test sets it)
        self.requests: list[dict] = []
        self.rejected: list[str] = []
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
                if self.path != "/v1/models":
                    return self._send(404, json.dumps({"error": f"no route {self.path}"}).encode())
                self._send(200, b'{"object": "list", "data": [{"id": "test-model", "object": "model"}]}')

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = ROUTES.get(self.path)
                if kind is None:  # as vLLM and llama.cpp do: an unknown path is a 404
                    return self._send(404, json.dumps({"error": f"no route {self.path}"}).encode())
                try:
                    payload = json.loads(raw)
                except ValueError:
                    return self._send(400, b'{"error": "body is not JSON"}')
                problem = payload_problem(kind, payload)
                if problem:
                    server.rejected.append(problem)
                    return self._send(400, json.dumps({"error": problem}).encode())
                payload["auth"] = self.headers.get("Authorization")
                server.requests.append(payload)
                if server.failures_left > 0:
                    server.failures_left -= 1
                    return self._send(500, b'{"error": "overloaded"}')
                if server.mode == "hang":  # never answers on its own: a client must time out
                    server.release.wait(120)
                if server.mode == "bytes":
                    body = b'{"choices": [{"text": "Ann | caf\xff\xfe | 1\\nBo | x | 1"}], "usage": {}}'
                    return self._send(200, body)
                if server.mode == "garbage":
                    return self._send(200, b"<html>not json</html>")
                # The seed varies the text so that a workflow run yields no duplicates.
                text = as_asked(DIALOGUE.replace("Hi there", f"Hi there {payload.get('seed')}"), payload)
                choice = (
                    {"message": {"role": "assistant", "content": text}} if "messages" in payload else {"text": text}
                )
                body = {"choices": [choice], "usage": {"prompt_tokens": 11, "completion_tokens": 22}}
                self._send(200, json.dumps(body).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
