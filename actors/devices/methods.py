"""Fleet methods as plugins: what a method needs from a device, what it sends and receives,
and how it scores a session, in one registered class per method.

A scenario's ``methods:`` entries name a class of :data:`METHODS` (``method: duet``); the
fleet, the runner, the summary and the report read what they need from the class (does it
ask the cloud, which checkpoint does it score with, what does it cost on the device) and
never branch on its name. A new method is one module with one ``@register_method`` class,
named in the scenario's ``plugins:`` so it is imported before the methods are checked
(docs/methods.md, "Adding your own method"; ``examples/methods/duet_blend.py`` is the example).

The built-ins are the paper's: ``base`` (the global model), ``finetune`` (k steps on the
session's real-time clicks, on the device), ``hypernet`` (a generator that reads nothing),
``duet-no-swa`` and ``duet``. Their checkpoints are trained by `duet-sim train --method`
(duet/names.py lists what it trains); ``finetune-user`` is an offline baseline only, since
a phone does not hold its user's labelled training history.

No torch at import: `duet-sim validate` checks method names without loading it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from duet.names import METHODS as TRAINED_METHODS

if TYPE_CHECKING:
    from actors.devices.ondevice import Received
    from actors.devices.replay import Replay
    from duet.data import Samples
    from duet.dynamic import Params
    from duet.finetune import FinetuneConfig
    from duet.model import DeviceModel

METHODS: dict[str, type[FleetMethod]] = {}


def register_method(name: str) -> Callable[[type[FleetMethod]], type[FleetMethod]]:
    """Class decorator: make ``cls`` the fleet method called ``name``.

    Raises:
        ValueError: ``name`` is taken by another class, or the class's ``checkpoint`` is
            not a method `duet-sim train` trains.
    """

    def add(cls: type[FleetMethod]) -> type[FleetMethod]:
        if METHODS.get(name, cls) is not cls:
            raise ValueError(f"method {name!r} is already registered by {METHODS[name]}")
        if cls.checkpoint not in TRAINED_METHODS:
            raise ValueError(
                f"method {name!r}: checkpoint {cls.checkpoint!r} is not a trained method "
                f"{list(TRAINED_METHODS)}"
            )
        cls.name = name
        METHODS[name] = cls
        return cls

    return add


class FleetMethod:
    """One way a device gets the classifier it scores a session with.

    Class attributes say what the method needs and does; the fleet reads only these:

    Attributes:
        checkpoint: the trained method whose checkpoint it scores with (`duet-sim train
            --method`); ``base`` for methods that adapt the global model.
        generated: the cloud generates its classifier: the device uploads its real-time
            samples (or their embeddings) and downloads parameters, when its request policy
            says so.
        labels: it reads the session's labels on the device (to fine-tune).
        conditioned: it takes the ``condition`` and ``neck`` options (its generator reads
            data).
    """

    name: ClassVar[str] = ""
    checkpoint: ClassVar[str] = "base"
    generated: ClassVar[bool] = False
    labels: ClassVar[bool] = False
    conditioned: ClassVar[bool] = False

    def __init__(self, finetune: FinetuneConfig):
        self.finetune = finetune

    def session_params(
        self,
        model: DeviceModel,
        samples: Samples,
        replays: Sequence[Replay],
        received: Sequence[Received | None],
    ) -> Params:
        """(U, O, I) per layer: the classifier each of U sessions is scored with. Default:
        the global classifier, with the set a device received (or had cached) in its place."""
        from actors.devices.ondevice import with_received

        return with_received(model, len(replays), received)

    def device_work(self, model: DeviceModel, one: Samples) -> Callable[[], object] | None:
        """The on-device work of one session besides scoring (fine-tuning), as a call the
        fleet times for its virtual clock; None when there is none."""
        return None


@register_method("base")
class Base(FleetMethod):
    """The global model: the paired reference of every gain."""


@register_method("finetune")
class Finetune(FleetMethod):
    """k Adam steps on a copy of the global classifier, on the session's real-time clicks
    (or first frame), on the device: nothing sent, the labels read locally."""

    labels = True

    def session_params(self, model, samples, replays, received):  # noqa: ANN001, ANN201
        import torch

        from duet.finetune import finetune_params

        # negatives keyed by the replayed session, not its slot in this batch
        keys = torch.tensor([r.source_session for r in replays])
        return finetune_params(model, samples, torch.arange(len(replays)), self.finetune, keys)

    def device_work(self, model, one):  # noqa: ANN001, ANN201
        from functools import partial

        import torch

        from duet.finetune import finetune_params

        return partial(finetune_params, model, one, torch.arange(1), self.finetune)


@register_method("hypernet")
class Hypernet(FleetMethod):
    """A generator that reads nothing: one request per session, nothing uploaded."""

    checkpoint = "hypernet"
    generated = True


@register_method("duet-no-swa")
class DuetNoSwa(FleetMethod):
    """DUET with one generator: parameters generated from the device's samples."""

    checkpoint = "duet-no-swa"
    generated = True
    conditioned = True


@register_method("duet")
class Duet(FleetMethod):
    """DUET: parameters generated from the device's samples by the SWA-mixed generators."""

    checkpoint = "duet"
    generated = True
    conditioned = True


def method_class(name: str) -> type[FleetMethod]:
    """The registered class of ``name``.

    Raises:
        ValueError: no method is registered under ``name``; the message lists those that are.
    """
    if name not in METHODS:
        raise ValueError(
            f"unknown method {name!r}; registered: {sorted(METHODS)} (a plugin's method is "
            "registered when its module is listed under plugins:)"
        )
    return METHODS[name]


def import_plugins(modules: Sequence[str], root: str | None = None) -> None:
    """Import each plugin module, which registers its methods as it loads. Modules are
    found on ``sys.path`` and under ``root`` (default: the working directory, the repository
    root for ``make`` and the uploaded working dir of ``ray job submit --working-dir .``).

    Raises:
        ValueError: a module cannot be imported; the message names it and why.
    """
    import importlib
    import os
    import sys

    root = root or os.getcwd()
    if modules and root not in sys.path:
        sys.path.append(root)  # after site-packages: a plugin cannot shadow a library
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"plugin {module!r} cannot be imported: {exc}") from None
