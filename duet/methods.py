"""The built-in methods (duet/method.py has the contract), in the order tables list them:
baselines first, DUET last.

- ``base``: the UMN alone, its global classifier for every device.
- ``finetune``: ours, per session: k Adam steps on a copy of the global classifier using the
  session's labelled real-time samples, on the device (the paper's "LR*" column).
- ``finetune-user``: the authors' public code (HelloZicky/DUET,
  ``code/main/multi_metric_vanilla_finetune_train.py``): per user, every parameter of the
  base model fine-tuned on that user's labelled training rows. A phone does not hold them,
  so it is an offline baseline only.
- ``hypernet``: a HyperNetwork whose latent per layer is learned, not read from the device
  (paper Appendix A.1).
- ``duet-no-swa``: the PPG with one generator (paper Table 1, "DUET (w/o SWA)").
- ``duet``: the PPG with SWA over N_p generators (Eq. 4-9).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor

from duet.data import Samples
from duet.dynamic import Params
from duet.finetune import (
    finetune_params,
    finetune_user_logits,
    finetuned_logits,
    user_adapted,
)
from duet.method import METHODS, GeneratorOptions, Method
from duet.model import DeviceModel
from duet.ppg import PPGConfig
from duet.ranking import full_ranks


@METHODS.register("base")
class Base(Method):
    """The global model: the paired reference of every gain."""


@METHODS.register("finetune")
class Finetune(Method):
    """k Adam steps on a copy of the global classifier, on the session's real-time clicks
    (or first frame), on the device: nothing sent, the labels read locally."""

    adapts = "base"
    labels = True

    def eval_logits(self, model: DeviceModel, samples: Samples) -> Tensor:
        return finetuned_logits(model, samples, self.adapt.finetune)

    def row_params(self, model: DeviceModel, samples: Samples) -> Params:
        sessions, inverse = samples.session.unique(return_inverse=True)
        params = finetune_params(model, samples, sessions, self.adapt.finetune)
        return [(w[inverse], b[inverse]) for w, b in params]

    def session_params(
        self,
        model: DeviceModel,
        samples: Samples,
        keys: Tensor,
        received: Sequence[Params | None],
    ) -> Params:
        # negatives keyed by the replayed session, not its slot in this batch
        slots = torch.arange(len(keys))
        return finetune_params(model, samples, slots, self.adapt.finetune, keys)

    def device_work(self, model: DeviceModel, one: Samples) -> partial:
        return partial(finetune_params, model, one, one.session[:1], self.adapt.finetune)


@METHODS.register("finetune-user")
class FinetuneUser(Method):
    """Per user, the whole base model fine-tuned on the user's labelled training rows
    (``Adaptation.history``), then scored on the user's rows."""

    adapts = "base"
    needs_history = True

    def _history(self) -> Samples:
        if self.adapt.history is None:
            raise ValueError("finetune-user needs the users' labelled rows (Adaptation.history)")
        return self.adapt.history

    def eval_logits(self, model: DeviceModel, samples: Samples) -> Tensor:
        return finetune_user_logits(model, self._history(), samples, self.adapt.user)

    def full_ranks(self, model: DeviceModel, positives: Samples, seen: tuple) -> Tensor:
        """Each user's positives ranked by that user's own fine-tuned model."""
        rank = torch.empty(len(positives), dtype=torch.double)
        tuned_users = user_adapted(model, self._history(), positives.user.unique(), self.adapt.user)
        for user, tuned in tuned_users:
            rows = (positives.user == user).nonzero().squeeze(1)
            own = partial(Method.row_params, self, tuned)  # the tuned model's global classifier
            rank[rows] = full_ranks(tuned, positives.index(rows), own, *seen)
        return rank

    def adaptation_work(self, model: DeviceModel, one: Samples) -> partial:
        return partial(self.eval_logits, model, one)


class Generated(Method):
    """A method whose classifier the cloud generates with a PPG (not registered itself)."""

    generated = True

    @classmethod
    def generators(cls, options: GeneratorOptions) -> int:
        """How many generators SWA mixes (N_p); 1 is no SWA."""
        return 1

    @classmethod
    def ppg(cls, options: GeneratorOptions) -> PPGConfig:
        return PPGConfig(
            input_dim=options.input_dim,
            neck=options.neck,
            layer_embed_dim=options.embed_dim,
            max_block_params=options.max_block_params,
            num_generators=cls.generators(options),
            tau=options.tau,
            conditioned=cls.conditioned,
            condition=options.condition,
        )


@METHODS.register("hypernet")
class Hypernet(Generated):
    """A generator that reads nothing: one request per session, nothing uploaded."""


@METHODS.register("duet-no-swa")
class DuetNoSwa(Generated):
    """DUET with one generator: parameters generated from the device's samples."""

    conditioned = True


@METHODS.register("duet")
class Duet(Generated):
    """DUET: parameters generated from the device's samples by the SWA-mixed generators."""

    conditioned = True

    @classmethod
    def generators(cls, options: GeneratorOptions) -> int:
        return options.num_generators
