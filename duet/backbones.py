"""The built-in backbones (duet/backbone.py has the contract): SASRec, GRU4Rec and DIN over
click sequences (duet/sequence.py), MobileNetV3-Large and -Small over images
(duet/mobilenet.py), each with the paper's sizes (duet/builders.py)."""

from __future__ import annotations

from typing import Any

from torch import nn

from duet.backbone import BACKBONES, Backbone, ModelOptions
from duet.builders import mobilenet_umn, sequence_umn
from duet.mobilenet import MobileNetV3
from duet.model import ModelConfig
from duet.sequence import DIN, SASRec, SequenceBackbone
from duet.sequence import GRU4Rec as GRU4RecModule


class Sequence(Backbone):
    """A click-sequence encoder whose output the dynamic MLP turns into the user state."""

    kind = "clicks"
    encoder: type[SequenceBackbone]

    @classmethod
    def module(cls, cfg: ModelConfig) -> nn.Module:
        assert cfg.sequence is not None, f"{cls.name} needs a sequence config"
        return cls.encoder(cfg.sequence)

    @classmethod
    def model_config(cls, options: ModelOptions, meta: dict[str, Any]) -> ModelConfig:
        return sequence_umn(
            cls.name,
            options.method,
            meta["num_items"],
            history_length=meta["history_length"],
            num_generators=options.num_generators,
            tau=options.tau,
            neck=options.neck,
            condition=options.condition,
            arch=dict(options.arch),
        )


@BACKBONES.register("sasrec")
class SASRecBackbone(Sequence):
    encoder = SASRec


@BACKBONES.register("gru4rec")
class GRU4RecBackbone(Sequence):
    encoder = GRU4RecModule


@BACKBONES.register("din")
class DINBackbone(Sequence):
    encoder = DIN


class MobileNet(Backbone):
    """A MobileNetV3 trunk; the FC head is the dynamic layers."""

    kind = "images"
    variant: str

    @classmethod
    def module(cls, cfg: ModelConfig) -> nn.Module:
        assert cfg.mobilenet is not None, f"{cls.name} needs a mobilenet config"
        return MobileNetV3(cfg.mobilenet)

    @classmethod
    def model_config(cls, options: ModelOptions, meta: dict[str, Any]) -> ModelConfig:
        # a 128-wide head, not torchvision's 1280/1024: generation and CPU training stay
        # cheap (docs/methods.md, "Image head")
        return mobilenet_umn(
            cls.variant,
            options.method,
            meta["num_classes"],
            in_channels=meta["channels"],
            head_hidden=128,
            num_generators=options.num_generators,
            tau=options.tau,
        )


@BACKBONES.register("mobilenet_v3_large")
class MobileNetV3Large(MobileNet):
    variant = "large"


@BACKBONES.register("mobilenet_v3_small")
class MobileNetV3Small(MobileNet):
    variant = "small"
