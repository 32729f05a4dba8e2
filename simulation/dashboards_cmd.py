"""`duet-sim dashboards build|publish`: write dashboards/*.json, or upload them to a Grafana server.

``publish`` talks to Grafana's HTTP API through grafana-client: it checks ``/api/health``,
creates the Prometheus datasource (uid ``duet-prometheus``) and the ``DUET`` folder when
missing, then saves every dashboard with ``overwrite`` (publishing twice is harmless).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path("dashboards")
FOLDER_UID, FOLDER_TITLE = "duet", "DUET"  # platform/grafana/provisioning uses the same folder
SCRAPE_INTERVAL = (
    "5s"  # platform/prometheus/prometheus.yml; Grafana derives $__rate_interval from it
)
CLIENT_HINT = "pip install 'duet-sim[report]' (grafana-client, grafana-foundation-sdk)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("dashboards", help="build or publish the Grafana dashboards")
    sub = p.add_subparsers(dest="action", required=True, parser_class=type(p))
    build = sub.add_parser("build", help="write dashboards/*.json from simulation/dashboards.py")
    build.add_argument("--out", type=Path, default=DEFAULT_DIR)
    build.set_defaults(func=run_build)
    pub = sub.add_parser("publish", help="upload dashboards/*.json to a Grafana server")
    pub.add_argument("--url", required=True, help="Grafana base URL, e.g. http://127.0.0.1:3000")
    pub.add_argument(
        "--token",
        default=os.environ.get("GRAFANA_TOKEN"),
        help="service-account token (default: $GRAFANA_TOKEN; user:password@ in --url also works)",
    )
    pub.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the JSON files are")
    pub.add_argument(
        "--prometheus-url",
        default="http://127.0.0.1:9090",
        help="URL Grafana uses for the datasource when it has to create it",
    )
    pub.set_defaults(func=run_publish)


def run_build(args: argparse.Namespace) -> int:
    try:
        from simulation.dashboards import write_dashboards
    except ImportError as e:
        raise SystemExit(f"duet-sim dashboards build: error: {e}; {CLIENT_HINT}") from e
    for path in write_dashboards(args.out):
        print(path)
    return 0


def run_publish(args: argparse.Namespace) -> int:
    try:
        import requests
        from grafana_client import GrafanaApi
        from grafana_client.client import GrafanaException
    except ImportError as e:
        raise SystemExit(f"duet-sim dashboards publish: error: {e}; {CLIENT_HINT}") from e
    docs = load_dashboards(args.dir)
    api = GrafanaApi.from_url(args.url, credential=args.token, timeout=10.0)
    try:
        urls = publish(api, docs, args.prometheus_url)
    except (GrafanaException, requests.RequestException, RuntimeError) as e:
        raise SystemExit(f"duet-sim dashboards publish: error: {args.url}: {e}") from e
    for url in urls:
        print(args.url.rstrip("/") + url)
    return 0


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    """Every ``*.json`` in ``directory``; refuses an empty directory or a file without a uid."""
    docs = [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]
    if not docs:
        raise SystemExit(f"duet-sim dashboards publish: error: no *.json in {directory}")
    for doc in docs:
        if not doc.get("uid"):
            raise SystemExit(f"duet-sim dashboards publish: error: {doc.get('title')!r} has no uid")
    return docs


def referenced_datasource(docs: list[dict[str, Any]]) -> str:
    """The one datasource uid every panel, annotation and variable of ``docs`` queries."""
    refs = [p["datasource"] for d in docs for p in d.get("panels", []) if "datasource" in p]
    refs += [a["datasource"] for d in docs for a in d.get("annotations", {}).get("list", [])]
    refs += [v["datasource"] for d in docs for v in d.get("templating", {}).get("list", [])]
    uids = {r["uid"] for r in refs if r.get("type") == "prometheus"}
    if len(uids) != 1:
        raise SystemExit(
            "duet-sim dashboards publish: error: expected one Prometheus datasource, "
            f"got {sorted(uids)}"
        )
    return uids.pop()


def publish(api: Any, docs: list[dict[str, Any]], prometheus_url: str) -> list[str]:
    """Upload ``docs`` through a `grafana_client.GrafanaApi`; returns each dashboard's URL path.

    Raises:
        RuntimeError: a saved dashboard is missing from its folder afterwards.
        GrafanaException: the server refused a request (401 bad token, 412 ...).
    """
    from grafana_client.client import GrafanaClientError

    datasource_uid = referenced_datasource(docs)
    api.health.check()  # unreachable server or wrong URL: fail before changing anything
    try:
        api.datasource.get_datasource_by_uid(datasource_uid)
    except GrafanaClientError as e:
        if e.status_code != 404:
            raise
        api.datasource.create_datasource(
            {
                "name": datasource_uid,
                "uid": datasource_uid,
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "jsonData": {"timeInterval": SCRAPE_INTERVAL},
            }
        )
    try:
        folder = api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as e:
        if e.status_code != 404:
            raise
        folder = api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
    urls = []
    for doc in docs:
        saved = api.dashboard.update_dashboard(
            {
                "dashboard": {**doc, "id": None},
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": "duet-sim dashboards publish",
            }
        )
        urls.append(saved["url"])
    hits = api.search.search_dashboards(type_="dash-db", limit=5000)
    found = {hit["uid"] for hit in hits if hit.get("folderUid") == folder["uid"]}
    missing = sorted({doc["uid"] for doc in docs} - found)
    if missing:
        raise RuntimeError(f"saved but not in folder {FOLDER_UID!r}: {missing}")
    return urls
