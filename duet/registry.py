"""One registry shape for every extension point: methods, backbones, datasets, shift operators,
request policies.

A kind has a base class (its protocol: the abstract methods a class must implement) and one
:class:`Registry` that maps names to classes. Classes register with a decorator; the built-ins
of a kind live in one module, imported the first time the registry is read, and a plugin is
any module that registers classes when imported (:func:`load_plugins`, from a scenario's
``plugins:`` or a command's ``--plugin``). Nothing else keeps a list of names: the CLI's
choices, the scenario schema's checks and the report's order all read the registry.

No torch import, so `duet-sim --help` and `duet-sim validate` stay fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """A class that cannot be registered, or a name no class is registered under."""


class Registry(Generic[T]):
    """Names -> classes of one kind, in registration order (built-ins first).

    Args:
        kind (str): what the classes are, for messages ("method", "shift operator").
        base (type): every registered class subclasses it and implements its abstract methods.
        builtins (str | tuple[str, ...]): the modules that register the built-in classes,
            imported on first read.
        key (Callable | None): reads a class's name from the class itself (request policies
            name themselves by their ``type`` field); then ``register()`` takes no name.
    """

    def __init__(
        self,
        kind: str,
        base: type[T],
        builtins: str | tuple[str, ...],
        key: Callable[[type[T]], str] | None = None,
    ):
        self.kind, self.base, self.builtins, self.key = kind, base, builtins, key
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str | None = None) -> Callable[[type[T]], type[T]]:
        """Class decorator: register the class as ``name`` (or its ``key``).

        Raises:
            RegistryError: the name is taken by another class, the class does not subclass
                the kind's base, or it leaves one of the base's abstract methods unimplemented.
        """

        def add(cls: type[T]) -> type[T]:
            key = name if name is not None else self.key(cls) if self.key else None
            if not key:
                raise RegistryError(f"{self.kind} {cls.__qualname__}: registered without a name")
            self._check(key, cls)
            cls.name = key  # type: ignore[attr-defined]
            self._classes[key] = cls
            return cls

        return add

    def _check(self, name: str, cls: type[T]) -> None:
        taken = self._classes.get(name)
        if taken is not None and _origin(taken) != _origin(cls):
            raise RegistryError(f"{self.kind} {name!r} is already registered by {_origin(taken)}")
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise RegistryError(
                f"{self.kind} {name!r}: {_origin(cls)} does not subclass {_origin(self.base)}"
            )
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise RegistryError(
                f"{self.kind} {name!r}: {_origin(cls)} does not implement {', '.join(missing)}"
            )

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            modules = (self.builtins,) if isinstance(self.builtins, str) else self.builtins
            for module in modules:
                importlib.import_module(module)

    def __getitem__(self, name: str) -> type[T]:
        """The class registered as ``name``.

        Raises:
            RegistryError: none is; the message lists those that are.
        """
        self._load()
        if name not in self._classes:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; registered: {list(self._classes)} (a plugin's "
                f"{self.kind} is registered when its module is named under plugins: or by "
                "--plugin)"
            )
        return self._classes[name]

    def check(self, name: str) -> str:
        """``name`` if it is registered (a validator for config fields).

        Raises:
            RegistryError: it is not; the message lists those that are.
        """
        self[name]
        return name

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._classes))

    def names(self) -> tuple[str, ...]:
        """Every registered name, built-ins first, in registration order."""
        return tuple(self)

    def items(self) -> list[tuple[str, type[T]]]:
        self._load()
        return list(self._classes.items())


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class PluginError(ValueError):
    """A plugin module that cannot be loaded, naming the module and why."""


def load_plugins(modules: Sequence[str], root: str | None = None) -> None:
    """Import each plugin module; importing it registers its classes.

    Modules are found on ``sys.path`` and under ``root`` (default: the working directory,
    the repository root for ``make`` and the uploaded working dir of ``ray job submit
    --working-dir .``), which is appended after site-packages so a plugin cannot shadow a
    library.

    Raises:
        PluginError: a module does not import, or registers a class badly (a name taken,
            a required method missing); the message names the module.
    """
    root = root or os.getcwd()
    if modules and root not in sys.path:
        sys.path.append(root)
    for module in modules:
        try:
            importlib.import_module(module)
        except RegistryError as exc:
            raise PluginError(f"plugin {module!r}: {exc}") from None
        except Exception as exc:  # a plugin is user code: any failure is its failure
            raise PluginError(
                f"plugin {module!r} cannot be imported: {type(exc).__name__}: {exc}"
            ) from None
