"""Security properties of the code and its defaults: nothing deserializes untrusted bytes into
objects (no pickle, unsafe YAML or unrestricted torch.load) or runs a shell, and every server
the project starts binds 127.0.0.1 unless configured otherwise."""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml

from simulation.cli import build_parser
from simulation.scenario import GeneratorSpec, MetricsSpec

from .faults import listen_addresses

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("duet", "pipelines", "actors", "simulation", "benchmarks", "platform", "tests")
LOOPBACK = "127.0.0.1"

# module attribute calls that turn bytes into arbitrary objects (or run code)
UNSAFE_CALLS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("dill", "load"),
    ("dill", "loads"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("yaml", "load"),
    ("yaml", "load_all"),
    ("yaml", "unsafe_load"),
    ("yaml", "unsafe_load_all"),
    ("yaml", "full_load"),
    ("yaml", "full_load_all"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
    ("os", "system"),
    ("os", "popen"),
}
UNSAFE_LOADERS = {"Loader", "UnsafeLoader", "FullLoader"}  # yaml.<these> passed anywhere


def _keyword(call: ast.Call, name: str) -> object:
    """A call's keyword argument as a constant (``...`` when absent, None when not a constant)."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else None
    return ...


def unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every call in ``tree`` that could execute untrusted input."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in UNSAFE_LOADERS
            and (isinstance(node.value, ast.Name) and node.value.id == "yaml")
        ):
            found.append((node.lineno, f"yaml.{node.attr}"))
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
            found.append((node.lineno, func.id))
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            name = (func.value.id, func.attr)
            if name in UNSAFE_CALLS:
                found.append((node.lineno, ".".join(name)))
            if name == ("torch", "load") and _keyword(node, "weights_only") is not True:
                found.append((node.lineno, "torch.load without weights_only=True"))
            if name in (("np", "load"), ("numpy", "load")) and _keyword(
                node, "allow_pickle"
            ) not in (..., False):
                found.append((node.lineno, "np.load with allow_pickle"))
        if _keyword(node, "shell") not in (..., False):
            found.append((node.lineno, "shell=True"))
    return sorted(found)


def test_the_checker_catches_what_it_looks_for():
    bad = """
import pickle, torch, yaml, subprocess, numpy as np
pickle.loads(b"")
torch.load("m.pt")
torch.load("m.pt", weights_only=False)
yaml.load(text, Loader=yaml.FullLoader)
np.load("x.npy", allow_pickle=True)
subprocess.run("ls", shell=True)
eval("1")
"""
    good = """
torch.load("m.pt", map_location="cpu", weights_only=True)
yaml.safe_load(text)
df.list.eval(expr)
np.load("x.npy")
"""
    assert [what for _, what in unsafe_calls(ast.parse(bad))] == [
        "pickle.loads",
        "torch.load without weights_only=True",
        "torch.load without weights_only=True",
        "yaml.FullLoader",
        "yaml.load",
        "np.load with allow_pickle",
        "shell=True",
        "eval",
    ]
    assert unsafe_calls(ast.parse(good)) == []


def test_no_unsafe_deserialization_or_shell_in_the_code():
    files = sorted(p for d in SOURCES for p in (REPO / d).rglob("*.py"))
    assert len(files) > 50
    problems = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for path in files
        for line, what in unsafe_calls(ast.parse(path.read_text()))
    ]
    assert problems == []


def test_servers_bind_loopback_by_default():
    # duet-sim serve: the Serve HTTP proxy
    assert build_parser().parse_args(["serve", "--checkpoint", "x"]).host == LOOPBACK
    # duet-sim run: the generator's HTTP proxy (when generator.http_port is set), the exporter
    assert GeneratorSpec().http_host == LOOPBACK and MetricsSpec().host == LOOPBACK
    # serve deploy
    deploy = yaml.safe_load((REPO / "platform/serve/duet_generator.yaml").read_text())
    assert deploy["http_options"]["host"] == LOOPBACK
    # Prometheus: listens on loopback and scrapes the exporter there
    script = shlex.split((REPO / "platform/prometheus/run-local.sh").read_text(), comments=True)
    assert [a for a in script if "web.listen-address" in a] == [
        f"--web.listen-address={LOOPBACK}:$port"
    ]
    config = yaml.safe_load((REPO / "platform/prometheus/prometheus.yml").read_text())
    targets = [
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert targets and all(t.startswith(f"{LOOPBACK}:") for t in targets)


def test_the_exporter_listens_on_loopback_only():
    pytest.importorskip("prometheus_client")
    from actors.observability.metrics import MetricsServer

    server = MetricsServer("security", port=0)
    try:
        _, port = server.address()
        assert listen_addresses(port) == {LOOPBACK}
    finally:
        server.close(scrapes=0)
