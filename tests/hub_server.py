"""A local stand-in for the Hugging Face hub on 127.0.0.1, for the real `huggingface_hub` client.

It serves the endpoints that `snapshot_download` uses, routed by path like the hub:
- `GET /api/models/{repo}[/revision/{rev}]`: the repository's commit and file list;
- `GET /api/models/{repo}/tree/{rev}`: the file tree;
- `HEAD|GET /{repo}/resolve/{rev}/{file}`: a file, with the hub's commit, ETag and size headers.

Repositories are local folders. A gated repository answers 403 with the hub's `GatedRepo` error
code unless the request carries the expected token; an unknown one answers 401 `RepoNotFound`, as
the hub does for anonymous requests. Every request is recorded, so a test can check who asked what.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from conftest import require_workflow_mark


@dataclass
class Repo:
    folder: Path
    gated: bool = False
    commit: str = ""

    def __post_init__(self) -> None:
        if not self.commit:  # a stable 40-hex commit id derived from the content
            h = hashlib.sha1()
            for f in self.files():
                h.update(f.encode() + (self.folder / f).read_bytes())
            self.commit = h.hexdigest()

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())


@dataclass
class HubStandIn:
    repos: dict[str, Repo]
    token: str = "hf_test_token"
    requests: list[tuple[str, str]] = field(default_factory=list)

    def start(self) -> str:
        require_workflow_mark("the hub stand-in")
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, head=True)

            def do_GET(self) -> None:
                hub._answer(self, head=False)

        # Port 0: the OS picks a free port and the server keeps it (no pick-then-close race).
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ routing
    def _answer(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlparse(req.path).path)
        self.requests.append((req.command, path))
        repo_re = r"(?P<repo>[^/]+/[^/]+|[^/]+)"  # owner/name, or a bare name such as roberta-large
        api = re.fullmatch(rf"/api/models/{repo_re}(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?:/.*)?)?", path)
        resolve = re.fullmatch(rf"/{repo_re}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)
        match = api or resolve
        if match is None:
            return self._send(req, 404, {"error": f"no route for {path}"}, head, code="EntryNotFound")
        repo = self.repos.get(match["repo"])
        if repo is None:
            return self._send(req, 401, {"error": "Repository Not Found"}, head, code="RepoNotFound")
        if repo.gated and req.headers.get("Authorization") != f"Bearer {self.token}":
            msg = f"Access to model {match['repo']} is restricted. You must have access to it and be authenticated."
            return self._send(req, 403, {"error": msg}, head, code="GatedRepo", message=msg)
        if (match["rev"] or "main") not in ("main", repo.commit):
            return self._send(req, 404, {"error": "Invalid rev id"}, head, code="RevisionNotFound")
        if api and api["kind"] in (None, "revision"):
            body = {"id": match["repo"], "sha": repo.commit, "siblings": [{"rfilename": f} for f in repo.files()]}
            return self._send(req, 200, body, head)
        if api:
            tree = [
                {"type": "file", "path": f, "size": (repo.folder / f).stat().st_size, "oid": _git_oid(repo.folder / f)}
                for f in repo.files()
            ]
            return self._send(req, 200, tree, head)
        file = repo.folder / resolve["file"]
        if not file.is_file():
            return self._send(req, 404, {"error": "Entry not found"}, head, code="EntryNotFound")
        data = file.read_bytes()
        req.send_response(200)
        req.send_header("Content-Length", str(len(data)))
        req.send_header("ETag", f'"{_git_oid(file)}"')
        req.send_header("X-Repo-Commit", repo.commit)
        req.end_headers()
        if not head:
            req.wfile.write(data)

    @staticmethod
    def _send(req, status: int, body, head: bool, code: str | None = None, message: str | None = None) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        if code:
            req.send_header("X-Error-Code", code)
        if message:
            req.send_header("X-Error-Message", message)
        req.end_headers()
        if not head:
            req.wfile.write(data)


def _git_oid(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
