"""Command-line flags generated from the typed configs that own the settings.

A setting is declared once, as a field of its layer's config (a pydantic model or dataclass,
e.g. ``simulation.train_recipe.TrainOptions``, ``pipelines.sessions.SessionOptions``): its
type, default, bounds and description. The CLI reads the flags off the config, so changing
a default or a description changes ``--help``, the scenario schema and the docs at once.

Flag per field: ``--field-name``; a ``Literal`` or a registry (duet/registry.py) in the
field's metadata gives the choices; a bool defaulting to True becomes ``--no-field-name``.
Unset flags stay out of the parsed namespace (argparse.SUPPRESS), so the config applies its
own defaults and nothing restates them here. Values are checked by the config when it is
built; :func:`one_line` turns its error into the one line the CLI prints (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from duet.registry import Registry

SCALARS = (int, float, str, Path)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One field of a config as the CLI sees it."""

    name: str
    annotation: Any
    default: Any  # PydanticUndefined: required
    description: str
    metadata: tuple[Any, ...] = ()


def settings(config: type) -> list[Setting]:
    """The fields of a pydantic model, pydantic dataclass or plain dataclass."""
    if isinstance(config, type) and issubclass(config, BaseModel):
        fields = config.model_fields
    else:
        fields = getattr(config, "__pydantic_fields__", None)
    if fields is not None:
        return [
            Setting(n, f.annotation, f.default, f.description or "", tuple(f.metadata))
            for n, f in fields.items()
        ]
    hints = typing.get_type_hints(config, include_extras=True)
    docs = attribute_docs(config)
    return [
        Setting(f.name, hints[f.name], _dataclass_default(f), docs.get(f.name, ""))
        for f in dataclasses.fields(config)
    ]


def _dataclass_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return PydanticUndefined


_ATTRIBUTE = re.compile(r"^\s{4,8}(\w+) \([^)]*\): (.*)$")


def attribute_docs(config: type) -> dict[str, str]:
    """A dataclass's field descriptions from its docstring's ``Attributes:`` section
    (Google style, ``name (type): text`` and indented continuation lines)."""
    docs: dict[str, str] = {}
    current = None
    for line in (config.__doc__ or "").splitlines():
        match = _ATTRIBUTE.match(line)
        if match:
            current, docs[match[1]] = match[1], match[2].strip()
        elif current and line.startswith(" " * 12) and line.strip():
            docs[current] += " " + line.strip()
        else:
            current = None
    # the flag shows the default from the field itself
    return {k: re.sub(r"\s*Default: [^ ]*\.?$", "", v) for k, v in docs.items()}


def add_flags(
    parser: argparse.ArgumentParser,
    config: type,
    *,
    skip: typing.Collection[str] = (),
    flag_names: typing.Mapping[str, str] | None = None,
) -> None:
    """Add one flag per field of ``config`` (not those in ``skip``) to ``parser``.

    Args:
        flag_names (Mapping[str, str] | None): field -> flag, where the flag is not the
            field's name (``num_generators`` -> ``--np``).

    Raises:
        TypeError: a field whose type has no flag form and is not skipped.
    """
    for s in settings(config):
        if s.name in skip:
            continue
        flag = (flag_names or {}).get(s.name, "--" + s.name.replace("_", "-"))
        _add(parser, s, flag)


def _add(parser: argparse.ArgumentParser, s: Setting, flag: str) -> None:
    base, metadata = _unwrap(s.annotation)
    metadata += s.metadata
    required = s.default is PydanticUndefined
    if base is bool:  # a switch: the flag says the opposite of the default
        negated = s.default is True
        common = {"dest": s.name, "default": argparse.SUPPRESS}
        text = f"{s.description} (on unless this is given)" if negated else s.description
        action = "store_false" if negated else "store_true"
        name = f"--no-{flag[2:]}" if negated else flag
        parser.add_argument(name, action=action, help=text, **common)
        return
    shown = "" if required or s.default is None else f" (default: {s.default})"
    common = {"dest": s.name, "default": argparse.SUPPRESS, "help": s.description + shown}
    registry = next((m for m in metadata if isinstance(m, Registry)), None)
    if registry is not None:
        parser.add_argument(flag, choices=registry.names(), required=required, **common)
    elif typing.get_origin(base) is typing.Literal:
        choices = typing.get_args(base)
        kind = type(choices[0])
        parser.add_argument(flag, choices=choices, type=kind, required=required, **common)
    elif base in SCALARS:
        parser.add_argument(flag, type=base, required=required, **common)
    else:
        raise TypeError(f"{s.name}: no command-line form for {s.annotation!r}; skip it")


def _unwrap(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[X | None, meta...]`` -> (X, meta)."""
    metadata: tuple[Any, ...] = ()
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata = tuple(extra)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            inner, more = _unwrap(rest[0])
            return inner, metadata + more
    return annotation, metadata


def given(args: argparse.Namespace, config: type) -> dict[str, Any]:
    """The fields of ``config`` set on the command line."""
    names = {s.name for s in settings(config)}
    return {k: v for k, v in vars(args).items() if k in names}


def one_line(exc: ValueError, flag_of: typing.Callable[[str], str] | None = None) -> str:
    """A config's error as one line naming the setting: ``--epochs: Input should be
    greater than 0`` (the first problem; pydantic lists every one)."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:
        return message
    name = str(error["loc"][0])
    flag = flag_of(name) if flag_of else "--" + name.replace("_", "-")
    return f"{flag}: {message}"


PLUGIN_FLAG = "--plugin"


def add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    """``--plugin MODULE`` (repeatable): a module whose import registers methods, backbones,
    datasets, shift operators or request policies (duet/registry.py, docs/plugins.md).
    The CLI loads them before it builds its parsers (:func:`plugins_in`), so their names are
    among the choices."""
    parser.add_argument(
        PLUGIN_FLAG,
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: a plugin registering methods, backbones, datasets, "
        "shift operators or request policies (docs/plugins.md)",
    )


def plugins_in(argv: typing.Sequence[str]) -> list[str]:
    """The modules named by ``--plugin M`` or ``--plugin=M`` anywhere in ``argv``."""
    out = []
    for i, arg in enumerate(argv):
        if arg == PLUGIN_FLAG and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif arg.startswith(PLUGIN_FLAG + "="):
            out.append(arg.split("=", 1)[1])
    return out
