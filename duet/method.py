"""The `Method` abstraction: one class per method, consulted by training, offline evaluation
and the fleet alike.

A method says which checkpoint it needs and how that checkpoint trains (its PPG spec, its
loss), how the parameters of a session's classifier are made (generated in the cloud,
fine-tuned on the device, global), what evaluating it offline takes, and what adapting one
device costs. Nothing outside a method's own class branches on its name: the training
recipe, `duet-sim train`, the fleet, the scenario schema, the report and the benchmarks read
the class attributes and call the hooks below.

The built-ins (``duet/methods.py``) are the paper's: ``base`` (the UMN alone), ``finetune``
and ``finetune-user`` (the two fine-tuning baselines), ``hypernet`` (a HyperNetwork that reads
no data, Appendix A.1), ``duet-no-swa`` and ``duet`` (PPG with SWA over N_p generators). A new
method is one module with one ``@METHODS.register("name")`` class, loaded as a plugin
(docs/plugins.md walks through ``examples/plugins/duet_temperature.py``).

Notation used for tensor shapes: B rows, U sessions, D parameter sets, N rows per set,
O the head's output width, E the target embedding width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from duet.adaptation import Adaptation
from duet.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

    from duet.data import Samples
    from duet.dynamic import ClassifierConfig, Params
    from duet.model import DeviceModel, ModelConfig
    from duet.ppg import PPGConfig
    from duet.train import TrainConfig


@dataclass(frozen=True)
class GeneratorOptions:
    """What the trained options say about a generator, for methods that have one."""

    input_dim: int  # width of one real-time sample as the neck sees it
    neck: str  # the shared neck over click sequences (duet/ppg.py NECKS)
    condition: str  # what the PPG reads: "session" or "history" (duet/names.py CONDITIONS)
    num_generators: int = 5  # N_p, SWA's generators
    tau: float = 1.0  # SWA temperature
    embed_dim: int = 64  # e^(n), paper Table 5
    max_block_params: int = 16384  # Eq. 4: larger layers are generated in row blocks


class Method:
    """One way a device gets the classifier it scores a session with.

    Class attributes (what the recipe, the fleet and the scenario read):
        name: the registered name (set by ``METHODS.register``).
        adapts: the method whose trained checkpoint it adapts or scores with (``finetune``
            adapts ``base``'s); None: it trains a checkpoint of its own.
        generated: the cloud generates its classifier: a device uploads its real-time samples
            (or their embeddings) and downloads parameters, when its request policy says so.
        conditioned: its generator reads data, so it takes the ``condition`` and ``neck``
            options.
        labels: it reads the session's labels on the device (to fine-tune).
        needs_history: it adapts on a user's labelled training rows, which a phone does not
            hold: an offline baseline only.

    An instance carries the adaptation settings (:class:`Adaptation`); hooks that define the
    model are classmethods, since a checkpoint is rebuilt from its config alone.
    """

    name: ClassVar[str] = ""
    adapts: ClassVar[str | None] = None
    generated: ClassVar[bool] = False
    conditioned: ClassVar[bool] = False
    labels: ClassVar[bool] = False
    needs_history: ClassVar[bool] = False

    def __init__(self, adapt: Adaptation | None = None):
        self.adapt = adapt or Adaptation()

    @classmethod
    def trained_as(cls) -> str:
        """The method whose checkpoint this one trains or scores with."""
        return cls.adapts or cls.name

    # ---- the model: what the checkpoint holds --------------------------------------------
    @classmethod
    def ppg(cls, options: GeneratorOptions) -> PPGConfig | None:
        """The generator its checkpoint carries; None: it has none."""
        return None

    @classmethod
    def head(cls, classifier: ClassifierConfig) -> ClassifierConfig:
        """The dynamic layers Θ_c it scores with, given the backbone's: a method may widen
        them for outputs of its own and name the head (duet/dynamic.py) that reads them."""
        return classifier

    @classmethod
    def check_model(cls, cfg: ModelConfig) -> None:
        """Refuse a model config this method's checkpoint cannot hold (a generated method
        without a generator, or the reverse), before weights are loaded into it.

        Raises:
            ValueError: naming the method and what is wrong.
        """
        if cls.generated != (cfg.ppg is not None):
            need = "needs" if cfg.ppg is None else "takes no"
            raise ValueError(f"method {cls.name!r} {need} a ppg config")

    # ---- training ------------------------------------------------------------------------
    @classmethod
    def loss(cls, model: DeviceModel, batch: Samples, cfg: TrainConfig) -> Tensor:
        """The training loss of one batch (Eq. 7: γ^t-weighted, the generated classifier's
        plus the global classifier's)."""
        from duet.losses import weighted_loss

        return weighted_loss(model, batch, cfg)

    # ---- offline evaluation --------------------------------------------------------------
    def eval_logits(self, model: DeviceModel, samples: Samples) -> Tensor:
        """The logits it is judged by, for every row of ``samples`` in row order."""
        from duet.evaluate import predict

        return predict(model, samples)

    def row_params(self, model: DeviceModel, samples: Samples) -> Params:
        """(B, O, I) and (B, O) per layer: the classifier each row is scored with (full
        ranking scores each row against every item)."""
        if model.generates:
            return model.generated_params(samples)
        return model.classifier.params(len(samples))

    def full_ranks(self, model: DeviceModel, positives: Samples, seen: tuple) -> Tensor:
        """0-based rank of each positive's target among the items its user never clicked,
        ``seen`` the users' clicked items in CSR form (duet/ranking.py)."""
        from duet.ranking import full_ranks

        return full_ranks(model, positives, lambda s: self.row_params(model, s), *seen)

    def adaptation_work(self, model: DeviceModel, one: Samples) -> Callable[[], object] | None:
        """The work of adapting one device's classifier, the paper's "time delay" (Table 1):
        the generator's forward (in the cloud) or the on-device work; None for none."""
        if model.generates:
            import torch

            return partial(torch.no_grad()(model.generated_params), one)
        return self.device_work(model, one)

    # ---- the fleet -----------------------------------------------------------------------
    def session_params(
        self,
        model: DeviceModel,
        samples: Samples,
        keys: Tensor,
        received: Sequence[Params | None],
    ) -> Params:
        """(U, O, I) per layer: the classifier each of U sessions is scored with. ``keys``
        (U,) name the sessions (stable across batches); ``received[u]`` is the set device u
        got from the generator or had cached (D = 1), None for none. Default: the global
        classifier, with a received set in its place."""
        from duet.dynamic import with_received

        return with_received(model.classifier.params(len(keys)), received)

    def device_work(self, model: DeviceModel, one: Samples) -> Callable[[], object] | None:
        """The on-device work of one session besides scoring (fine-tuning), as a call the
        fleet times for its virtual clock; None when there is none."""
        return None


METHODS: Registry[Method] = Registry("method", Method, builtins="duet.methods")
