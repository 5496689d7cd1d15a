"""The Hugging Face Hub's HTTP API on 127.0.0.1, as far as ``model_info`` and
``snapshot_download`` use it: revision info, the recursive tree listing and file downloads,
for one repository at one or more commits. ``requests`` records what was asked."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self, repo_id: str, snapshots: dict[str, dict[str, bytes]], refs: dict[str, str]) -> None:
        """``snapshots``: commit -> file name -> bytes; ``refs``: branch or tag -> commit."""
        self.requests: list[str] = []
        commits = {**refs, **{sha: sha for sha in snapshots}}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(head=True)

            def do_GET(self) -> None:
                self.answer(head=False)

            def answer(self, head: bool) -> None:
                path = unquote(urlsplit(self.path).path).strip("/")
                hub.requests.append(f"{self.command} {path}")
                headers, body = {"content-type": "application/json"}, b""
                info, tree, resolve = (
                    f"api/models/{repo_id}/revision/",
                    f"api/models/{repo_id}/tree/",
                    f"{repo_id}/resolve/",
                )
                if path.startswith(info) and path.removeprefix(info) in commits:
                    sha = commits[path.removeprefix(info)]
                    siblings = [{"rfilename": n, "size": len(d)} for n, d in snapshots[sha].items()]
                    body = json.dumps({"id": repo_id, "sha": sha, "siblings": siblings}).encode()
                elif path.startswith(tree) and path.removeprefix(tree).split("/")[0] in snapshots:
                    files = snapshots[path.removeprefix(tree).split("/")[0]]
                    listing = [
                        {"type": "file", "path": n, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                        for n, d in files.items()
                    ]
                    body = json.dumps(listing).encode()
                elif path.startswith(resolve) and path.removeprefix(resolve).split("/")[0] in snapshots:
                    sha, name = path.removeprefix(resolve).split("/", 1)
                    if name not in snapshots[sha]:
                        self._not_found()
                        return
                    body = snapshots[sha][name]
                    headers = {"ETag": f'"{hashlib.sha1(body).hexdigest()}"', "X-Repo-Commit": sha}
                else:
                    self._not_found(revision=path.startswith((info, tree, resolve)))
                    return
                self.send_response(200)
                for key, value in {**headers, "content-length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _not_found(self, *, revision: bool = False) -> None:
                self.send_response(404)
                if revision:  # huggingface_hub raises RevisionNotFoundError on these headers
                    self.send_header("X-Error-Code", "RevisionNotFound")
                    self.send_header("X-Error-Message", "Invalid rev id")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
