"""Reading a scenario file: the size and encoding limits, a YAML loader that refuses anchors,
tags and duplicate keys, ``--set`` overrides, and errors that name the field's path and line
(``quickstart.yaml: fleet.devices (line 12): Input should be greater than 0``). The schema
itself is simulation/scenario.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulation.scenario import Scenario

MAX_SCENARIO_BYTES = 256 * 1024  # a scenario is a page of YAML; bigger is a mistake or an attack


class ScenarioError(ValueError):
    """Every problem of a scenario, one per line: ``file: path (line n): message``."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load_scenario(
    path: str | Path, overrides: Sequence[str] = (), plugins: Sequence[str] = ()
) -> Scenario:
    """Read, check and validate a scenario file; ``overrides`` are ``key.sub=value`` strings,
    ``plugins`` modules added to the file's ``plugins:`` (the CLI's ``--plugin``).

    Raises:
        ScenarioError: every problem found, each naming the YAML path and line.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:  # never more than the limit: it may be /dev/zero or 10 GB
            text = fh.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read ({exc.strerror})"]) from None
    return parse_scenario(text, path.name, overrides, plugins)


def parse_scenario(
    text: bytes | str, name: str, overrides: Sequence[str] = (), plugins: Sequence[str] = ()
) -> Scenario:
    """Check and validate a scenario's text as a file called ``name`` would be (the Python
    entry point passes text and dicts here, simulation/api.py).

    Raises:
        ScenarioError: every problem found, each naming the YAML path and line.
    """
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_SCENARIO_BYTES:
        line = raw.count(b"\n") + 1
        raise ScenarioError(
            [
                f"{name}: <top> (line {line}): more than {MAX_SCENARIO_BYTES} "
                "bytes; a scenario is a page of YAML"
            ]
        )
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:  # replacement characters would hide a wrong encoding
        line = raw[: exc.start].count(b"\n") + 1
        raise ScenarioError(
            [f"{name}: <top> (line {line}): not valid UTF-8 ({exc.reason})"]
        ) from None
    root, data = _parse(name, decoded)
    for item in overrides:
        _apply_override(data, item)
    if plugins and isinstance(data.get("plugins", []), list):  # else the schema says why
        data["plugins"] = [*data.get("plugins", []), *plugins]
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([_problem(name, root, e, overrides) for e in exc.errors()]) from None


def _parse(name: str, text: str) -> tuple[yaml.Node | None, dict[str, Any]]:
    """Compose the node tree (kept for line numbers) and construct plain data from it."""
    loader = _ScenarioLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        path = _dotted(loader.path) or "<top>"  # the field being read when it failed
        raise ScenarioError([f"{name}: {path}{where}: invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise ScenarioError(
            [f"{name}: <top> (line {line}): expected a mapping, got {type(data).__name__}"]
        )
    return root, data


class _ScenarioLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, explicit tags and duplicate keys, and knows
    the path of the node it is composing (``path``), so a YAML-level error can name its field.

    Aliases are how a small file expands into a huge document ("billion laughs") and a
    scenario never needs them, nor tags (``!!python/object`` is refused by SafeLoader anyway,
    here with the field's path); YAML silently keeps the last of duplicate keys, which hides
    a typo'd override.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.path: list[str | int] = []  # left as it was when composing fails

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201
        # PyYAML passes a mapping value's key node, a sequence item's position, or None (a key)
        step = index.value if isinstance(index, yaml.ScalarNode) else index
        if step is not None:
            self.path.append(step)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not accepted in scenarios", event.start_mark
            )
        if getattr(event, "tag", None) is not None:  # only explicit ones: plain nodes have none
            raise yaml.composer.ComposerError(
                None, None, f"tags ({event.tag}) are not accepted in scenarios", event.start_mark
            )
        node = super().compose_node(parent, index)
        if step is not None:
            self.path.pop()
        return node

    def compose_mapping_node(self, anchor):  # noqa: ANN001, ANN201
        node = super().compose_mapping_node(anchor)
        seen: set[Any] = set()
        for key, _ in node.value:
            if key.value in seen:
                self.path.append(key.value)
                raise yaml.composer.ComposerError(
                    None, None, f"duplicate key {key.value!r}", key.start_mark
                )
            seen.add(key.value)
        return node


def _apply_override(data: dict[str, Any], item: str) -> None:
    """``a.b.0.c=value``: set one field; the value is parsed as YAML (``3``, ``true``, ``[a]``)."""
    key, sep, raw = item.partition("=")
    parts = key.split(".")
    if not sep or not all(parts):
        raise ScenarioError([f"override {item!r}: expected KEY.SUB=VALUE"])
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ScenarioError([f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section"])
    last = parts[-1]
    value = yaml.safe_load(raw) if raw else None
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError([f"override {item!r}: {'.'.join(parts[:-1])} is not a section"])


def _problem(name: str, root: yaml.Node | None, error: Any, overrides: Sequence[str]) -> str:
    """One error as ``file: a.b[2] (line n): message``, the line of the deepest node present."""
    loc, message = list(error["loc"]), str(error["msg"]).removeprefix("Value error, ")
    blamed = _BLAMED.match(message) if not loc else None
    if blamed:  # a cross-section check names the field it blames (Scenario._cross_checks)
        loc = [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]", blamed[1]) if p]
        message = message[blamed.end() :]
    parts: list[str | int] = []
    line, node = 1, root
    for depth, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None and any(
                k.value == "type" and getattr(v, "value", None) == part for k, v in node.value
            ):
                continue  # pydantic names the union member by its tag: not a YAML key
            if match is None:  # not in the file (missing, or set by --set): the section's line
                parts.extend(loc[depth:])
                break
            parts.append(part)
            line, node = match[0].start_mark.line + 1, match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            parts.append(part)
            node = node.value[part]
            line = node.start_mark.line + 1
        else:  # a scalar reached: the rest of loc names pydantic's union member, not YAML
            if node is None or not isinstance(node, yaml.ScalarNode):
                parts.append(part)
            break
    dotted = ".".join(str(p) for p in parts)
    keys = [o.partition("=")[0] for o in overrides]
    overridden = any(k == dotted or k.startswith(dotted + ".") for k in keys)
    where = "override" if overridden else f"line {line}"
    return f"{name}: {_dotted(parts) or '<top>'} ({where}): {message}"


_BLAMED = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w/-]+|\[\d+\])*): ")  # "shifts[0].operator: "


def _dotted(parts: Sequence[str | int]) -> str:
    """``["shifts", 0, "operator"]`` -> ``shifts[0].operator``."""
    return "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" if i else p for i, p in enumerate(parts)
    )
