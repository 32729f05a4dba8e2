"""`duet-sim dashboards publish` against a loopback server implementing the Grafana HTTP API
endpoints it uses, as Grafana documents them (no Grafana server can be installed here)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from simulation.cli import main

TOKEN = "glsa_test_token"
REPO = Path(__file__).resolve().parents[2]


class FakeGrafana:
    """State and routes of the documented endpoints (HTTP API reference: health, data source,
    folder, dashboard, search). Answers with Grafana's status codes and bodies."""

    def __init__(self) -> None:
        self.datasources: dict[str, dict] = {}
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}  # uid -> {"dashboard", "folderUid", "version"}
        self.requests: list[str] = []

    def route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if path == "/api/health":  # the one endpoint Grafana serves without auth
            return 200, {"database": "ok", "version": "11.6.0", "commit": "test"}
        if m := re.fullmatch(r"/api/datasources/(uid|name)/([^/]+)", path):
            hits = [d for d in self.datasources.values() if d[m[1]] == m[2]]
            return (200, hits[0]) if hits else (404, {"message": "Data source not found"})
        if path == "/api/datasources" and method == "POST":
            return self.add_datasource(body)
        if m := re.fullmatch(r"/api/folders/([^/]+)", path):
            found = self.folders.get(m[1])
            return (200, found) if found else (404, {"message": "folder not found"})
        if path == "/api/folders" and method == "POST":
            return self.add_folder(body)
        if path == "/api/dashboards/db" and method == "POST":
            return self.save_dashboard(body)
        if m := re.fullmatch(r"/api/dashboards/uid/([^/]+)", path):
            found = self.dashboards.get(m[1])
            return (200, found) if found else (404, {"message": "Dashboard not found"})
        if path == "/api/search":
            return 200, self.search(query)
        return 404, {"message": "Not found"}

    def add_datasource(self, body: dict) -> tuple[int, Any]:
        if any(d["name"] == body["name"] for d in self.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        ds = {**body, "id": len(self.datasources) + 1}
        self.datasources[body["uid"]] = ds
        return 200, {
            "datasource": ds,
            "id": ds["id"],
            "message": "Datasource added",
            "name": ds["name"],
        }

    def add_folder(self, body: dict) -> tuple[int, Any]:
        if body.get("uid") in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        folder = {
            "id": len(self.folders) + 1,
            "uid": body["uid"],
            "title": body["title"],
            "version": 1,
        }
        self.folders[body["uid"]] = folder
        return 200, folder

    def save_dashboard(self, body: dict) -> tuple[int, Any]:
        doc = body["dashboard"]
        if not doc.get("title"):
            return 400, {"message": "Dashboard title cannot be empty"}
        if body.get("folderUid") not in self.folders:
            return 400, {"message": "folder not found"}
        if doc.get("id") is not None and doc["uid"] not in self.dashboards:
            return 404, {"message": "Dashboard not found"}
        old = self.dashboards.get(doc["uid"])
        if old and not body.get("overwrite"):
            return 412, {
                "message": "A dashboard with the same uid already exists",
                "status": "name-exists",
            }
        version = old["version"] + 1 if old else 1
        self.dashboards[doc["uid"]] = {
            "dashboard": doc,
            "folderUid": body["folderUid"],
            "version": version,
        }
        slug = re.sub(r"[^a-z0-9]+", "-", doc["title"].lower()).strip("-")
        return 200, {
            "id": list(self.dashboards).index(doc["uid"]) + 1,
            "uid": doc["uid"],
            "url": f"/d/{doc['uid']}/{slug}",
            "status": "success",
            "version": version,
            "slug": slug,
        }

    def search(self, query: dict) -> list[dict]:
        if query.get("type", ["dash-db"])[0] != "dash-db":
            return []
        tag = query.get("tag", [None])[0]
        return [
            {
                "uid": uid,
                "title": d["dashboard"]["title"],
                "type": "dash-db",
                "tags": d["dashboard"]["tags"],
                "folderUid": d["folderUid"],
                "url": f"/d/{uid}",
            }
            for uid, d in self.dashboards.items()
            if tag is None or tag in d["dashboard"]["tags"]
        ]


def handler_for(grafana: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            grafana.requests.append(f"{method} {url.path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            if url.path != "/api/health" and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, payload = 401, {"message": "Unauthorized"}
            else:
                status, payload = grafana.route(method, url.path, parse_qs(url.query), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_publish_creates_datasource_folder_and_dashboards(grafana, capsys) -> None:
    state, url = grafana
    argv = [
        "dashboards",
        "publish",
        "--url",
        url,
        "--token",
        TOKEN,
        "--dir",
        str(REPO / "dashboards"),
    ]
    assert main(argv) == 0
    committed = {p.stem: json.loads(p.read_text()) for p in (REPO / "dashboards").glob("*.json")}
    assert len(state.dashboards) == len(committed) == 4
    for doc in committed.values():
        saved = state.dashboards[doc["uid"]]
        assert saved["folderUid"] == "duet" and saved["version"] == 1
        assert saved["dashboard"] == {**doc, "id": None}
    ds = state.datasources["duet-prometheus"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://127.0.0.1:9090"
    printed = capsys.readouterr().out.split()
    assert sorted(p.split("/")[4] for p in printed) == sorted(d["uid"] for d in committed.values())
    assert all(p.startswith(f"{url}/d/") for p in printed)
    # publishing again overwrites in place, no duplicate datasource or folder
    assert main(argv) == 0
    assert {d["version"] for d in state.dashboards.values()} == {2}
    assert len(state.datasources) == len(state.folders) == 1
    assert state.requests.count("POST /api/datasources") == 1


def test_publish_bad_token_is_one_line_error(grafana) -> None:
    state, url = grafana
    with pytest.raises(SystemExit, match=r"publish: error: .*Unauthorized"):
        main(
            [
                "dashboards",
                "publish",
                "--url",
                url,
                "--token",
                "wrong",
                "--dir",
                str(REPO / "dashboards"),
            ]
        )
    assert not state.dashboards and not state.datasources


def test_publish_unreachable_server_is_one_line_error() -> None:
    with socket.socket() as s:  # a port nothing listens on once the socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SystemExit, match="publish: error: http://127.0.0.1"):
        main(
            [
                "dashboards",
                "publish",
                "--url",
                f"http://127.0.0.1:{port}",
                "--token",
                TOKEN,
                "--dir",
                str(REPO / "dashboards"),
            ]
        )


def test_publish_refuses_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no \\*.json"):
        main(["dashboards", "publish", "--url", "http://127.0.0.1:1", "--dir", str(tmp_path)])
