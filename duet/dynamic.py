"""The dynamic layers Θ_c: a small MLP whose parameters are either global (base) or
generated per device (DUET), with one functional forward for a batch of parameter sets.

Notation used for tensor shapes: D devices (parameter sets), N samples per device,
I/O a layer's input/output width.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from duet.registry import Registry

# One (weight (D, O, I), bias (D, O)) pair per dynamic layer, batched over devices.
Params = list[tuple[Tensor, Tensor]]

ACTIVATIONS = {"relu": F.relu, "hardswish": F.hardswish, "tanh": torch.tanh}


class Head(ABC):
    """How the dynamic layers' output becomes logits: a registered class (:data:`HEADS`).

    The built-in ``dot`` dots the output with the target item's embedding (clicks) or takes
    it as class logits (images). A method that adds outputs of its own (a per-device
    temperature, examples/plugins/duet_temperature.py) registers a head that reads them.
    """

    name: ClassVar[str] = ""

    @staticmethod
    @abstractmethod
    def logits(out: Tensor, target_emb: Tensor | None) -> Tensor:
        """Logits from ``out`` (D, N, O): with the target embeddings (D, N, E), (D, N) click
        logits; without, (D, N, C) class logits."""

    @staticmethod
    @abstractmethod
    def item_logits(out: Tensor, items: Tensor) -> Tensor:
        """(P, N + 1) logits of every item as the target of P rows whose target-independent
        state gave ``out`` (P, O), against the item embeddings ``items`` (N + 1, E): full
        ranking's form of :meth:`logits`."""


HEADS: Registry[Head] = Registry("head", Head, builtins="duet.dynamic")


@HEADS.register("dot")
class Dot(Head):
    """The paper's: the output dotted with the target embedding, or the class logits."""

    @staticmethod
    def logits(out: Tensor, target_emb: Tensor | None) -> Tensor:
        return out if target_emb is None else (out * target_emb).sum(-1)

    @staticmethod
    def item_logits(out: Tensor, items: Tensor) -> Tensor:
        return out @ items.T  # one matmul for every item


@dataclass(frozen=True)
class ClassifierConfig:
    dims: tuple[int, ...]  # (in, hidden..., out); len(dims) - 1 dynamic layers
    activation: str = "relu"  # between layers, never after the last
    dropout: float = 0.0  # before each hidden layer during training (MobileNetV3 head uses 0.2)
    head: str = "dot"  # how the output becomes logits (HEADS)

    def __post_init__(self) -> None:
        if len(self.dims) < 2 or min(self.dims) < 1:
            raise ValueError(f"dims needs >= 2 positive widths, got {self.dims}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """(out, in) of every dynamic layer."""
        return list(zip(self.dims[1:], self.dims[:-1], strict=True))

    @property
    def num_params(self) -> int:
        return sum(o * i + o for o, i in self.shapes)


def functional_forward(
    cfg: ClassifierConfig, x: Tensor, params: Params, training: bool = False
) -> Tensor:
    """Apply the MLP to ``x`` (D, N, I) with device d's own parameters ``params[.][d]``.

    One batched matmul per layer: scoring many devices costs one call, not a Python loop.
    """
    act = ACTIVATIONS[cfg.activation]
    for n, (w, b) in enumerate(params):
        if n > 0:
            x = F.dropout(act(x), cfg.dropout, training)
        x = torch.baddbmm(b[:, None, :], x, w.transpose(1, 2))  # (D, N, O)
    return x


class GlobalClassifier(nn.Module):
    """The global classifier parameters Θ_c (the `base` model, and the fallback on device)."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for out, inp in cfg.shapes:
            w = torch.empty(out, inp)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))  # nn.Linear's default
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(out)))

    def params(self, num_devices: int) -> Params:
        """The global parameters broadcast to ``num_devices`` devices (views, no copy)."""
        return [
            (w.expand(num_devices, *w.shape), b.expand(num_devices, *b.shape))
            for w, b in zip(self.weights, self.biases, strict=True)
        ]


def with_received(params: Params, received: Sequence[Params | None]) -> Params:
    """(U, O, I) per layer: ``params`` (U sets, e.g. the global classifier broadcast) with
    set u replaced by ``received[u]`` ((O, I), (O,) per layer) where a device received one
    (or had it cached); left as given where it has none (a fallback, or nothing cached)."""
    out = [(w.detach().clone(), b.detach().clone()) for w, b in params]
    for u, got in enumerate(received):
        if got is not None:
            for (w, b), (rw, rb) in zip(out, got, strict=True):
                w[u], b[u] = rw, rb
    return out
