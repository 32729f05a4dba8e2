"""The KubeRay manifests and the image they run, checked structurally (no Kubernetes here):
the kinds KubeRay knows, an entrypoint that is our CLI on a shipped scenario with object-store
locations, the generator's Serve config embedded as committed, resources on every container,
credentials only from a Secret."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "platform" / "kubernetes"
IMAGE = "duet-sim:latest"


def manifest(name: str) -> dict:
    return yaml.safe_load((KUBE / name).read_text())


def containers(cluster: dict) -> list[dict]:
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_the_rayjob_runs_duet_sim_on_a_shipped_scenario_with_object_storage():
    job = manifest("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["duet-sim", "run"] and (ROOT / argv[2]).is_file()
    options = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert options["--out"].startswith("s3://")
    assert options["--set"].startswith("data.prepared=s3://")
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == "2.60.0"


def test_the_rayservice_embeds_the_committed_serve_config():
    service = manifest("rayservice.yaml")
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    committed = yaml.safe_load((ROOT / "platform" / "serve" / "duet_generator.yaml").read_text())
    assert embedded == committed


def test_every_container_runs_our_image_with_resources_and_secret_credentials():
    clusters = [
        manifest("rayjob.yaml")["spec"]["rayClusterSpec"],
        manifest("rayservice.yaml")["spec"]["rayClusterConfig"],
    ]
    for container in (c for cluster in clusters for c in containers(cluster)):
        assert container["image"] == IMAGE
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind])
        assert {"secretRef": {"name": "duet-s3"}} in container["envFrom"]
        assert all(not e["name"].startswith("AWS_") for e in container.get("env", []))
    text = "".join(p.read_text() for p in KUBE.glob("*.yaml"))
    # a value, not the name or the placeholder of the kubectl command in the comments
    assert not re.search(r"AWS_SECRET_ACCESS_KEY\s*[:=]\s*(?!\.\.\.)\S", text)


def test_the_dockerfile_builds_the_image_the_manifests_name():
    docker = (ROOT / "platform" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", docker, re.M)
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in docker
    assert 'pip install --no-cache-dir ".[ray,report]"' in docker
    assert f"-t {IMAGE}" in docker
    for package in ("duet", "pipelines", "actors", "simulation", "configs"):
        assert f"COPY {package} {package}" in docker
