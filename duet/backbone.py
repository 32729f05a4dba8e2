"""The backbone registry: Θ_b, the static layers a device runs, one registered class each.

A backbone says which data it reads (``kind``), builds its torch module from a checkpoint's
config, and builds the whole model config of a method on a prepared dataset (its sizes come
from the dataset's facts, ``meta.json``). `DeviceModel`, the training recipe and the scenario
schema ask the registry; nothing else branches on a backbone's name. The built-ins
(duet/backbones.py) are the paper's: SASRec, GRU4Rec and DIN over click sequences, and
MobileNetV3-Large/-Small over images.

No torch import, so listing backbones stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from duet.registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from duet.model import ModelConfig


@dataclass(frozen=True)
class ModelOptions:
    """The training options a model's shape depends on (simulation/train_recipe.py declares
    them; these are their resolved values)."""

    method: str
    num_generators: int
    tau: float
    neck: str
    condition: str
    arch: tuple[tuple[str, Any], ...]


class Backbone(ABC):
    """One backbone. ``kind`` is the data it reads: "clicks" or "images"."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def module(cls, cfg: ModelConfig) -> nn.Module:
        """The torch module of a model built with ``cfg`` (its ``feature_dim`` says how wide
        its features are)."""

    @classmethod
    @abstractmethod
    def model_config(cls, options: ModelOptions, meta: dict[str, Any]) -> ModelConfig:
        """The model ``options.method`` trains on a prepared dataset with facts ``meta``."""


BACKBONES: Registry[Backbone] = Registry("backbone", Backbone, builtins="duet.backbones")


def check_backbone_fits(backbone: str, kind: str) -> None:
    """Raises ValueError when ``backbone`` does not read ``kind`` data (an image backbone on
    clicks, or the reverse), naming both."""
    reads = BACKBONES[backbone].kind
    if reads != kind:
        raise ValueError(f"backbone {backbone!r} reads {reads}, not {kind}")
