"""The device model: a static backbone (Θ_b) plus dynamic classifier layers (Θ_c) whose
parameters are global (base), generated per device by the PPG (DUET), or generated from
learned latents (HyperNetwork).

The split mirrors the paper's device/cloud duet: `device_inputs` and `score` run on the
device, `generate` runs in the cloud. Training glues them together.

Notation used for tensor shapes: B rows, U distinct sessions (devices) in a batch,
F backbone feature dim, E item embedding dim, C classes, R real-time samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from duet.backbone import BACKBONES
from duet.data import ClickSamples, Samples, first_of_groups
from duet.dynamic import HEADS, ClassifierConfig, GlobalClassifier, Params, functional_forward
from duet.mobilenet import MobileNetConfig
from duet.ppg import PPG, PPGConfig
from duet.sequence import SequenceConfig


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored as JSON beside each checkpoint."""

    backbone: str
    method: str
    classifier: ClassifierConfig
    sequence: SequenceConfig | None = None
    mobilenet: MobileNetConfig | None = None
    ppg: PPGConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # dataset facts, e.g. class names

    def __post_init__(self) -> None:
        BACKBONES.check(self.backbone)
        if self.ppg is not None and self.ppg.condition == "history" and self.sequence is None:
            raise ValueError("condition 'history' reads click histories: images have none")

    @property
    def kind(self) -> str:
        return "clicks" if self.sequence is not None else "images"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        def build(kind, value):
            return (
                None
                if value is None
                else kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
            )

        return cls(
            backbone=d["backbone"],
            method=d["method"],
            classifier=build(ClassifierConfig, d["classifier"]),
            sequence=build(SequenceConfig, d.get("sequence")),
            mobilenet=build(MobileNetConfig, d.get("mobilenet")),
            ppg=build(PPGConfig, d.get("ppg")),
            extra=d.get("extra", {}),
        )


class DeviceModel(nn.Module):
    """A checkpoint's model; its head (duet/dynamic.py ``HEADS``, by the classifier config's
    ``head``) turns the dynamic layers' output into logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.head = HEADS[cfg.classifier.head]
        self.backbone: nn.Module = BACKBONES[cfg.backbone].module(cfg)
        fdim = self.backbone.feature_dim
        assert cfg.classifier.dims[0] == fdim, (
            f"classifier input {cfg.classifier.dims[0]} != backbone features {fdim}"
        )
        self.classifier = GlobalClassifier(cfg.classifier)
        self.ppg = PPG(cfg.ppg, cfg.classifier) if cfg.ppg is not None else None

    @property
    def generates(self) -> bool:
        return self.ppg is not None

    # ---- on device ---------------------------------------------------------------------
    def features(self, s: Samples) -> tuple[Tensor, Tensor | None]:
        """Backbone output: (features (B, F), target embedding (B, E) or None for images)."""
        if isinstance(s, ClickSamples):
            return self.backbone(s.row_history(), s.target, s.group)
        return self.backbone(s.pixels), None

    def device_inputs(self, realtime: Tensor) -> tuple[Tensor, Tensor]:
        """What a device uploads in embedding mode: per real-time sample vectors and a mask.

        Clicks: realtime (U, R) item ids -> embeddings (U, R, E). Images: realtime
        (U, C, H, W) first frames -> frozen backbone features (U, 1, F).
        """
        if self.cfg.kind == "clicks":
            return self.backbone.embed(realtime), realtime != 0
        feats = self.backbone(realtime).detach()  # the PPG sees frozen features (docs/methods.md)
        return feats[:, None], torch.ones(feats.shape[0], 1, dtype=torch.bool)

    def score(self, feat: Tensor, target_emb: Tensor | None, params: Params) -> Tensor:
        """Logits for feat (D, N, F) with device d's parameters: (D, N) clicks, (D, N, C) images."""
        out = functional_forward(self.cfg.classifier, feat, params, self.training)
        return self.head.logits(out, target_emb)

    # ---- in the cloud -----------------------------------------------------------------
    def generate(self, inputs: Tensor | None, mask: Tensor | None, num_devices: int) -> Params:
        assert self.ppg is not None, f"method {self.cfg.method!r} does not generate parameters"
        return self.ppg(inputs, mask, num_devices)

    # ---- both, for training and offline evaluation -------------------------------------
    def forward(self, s: Samples) -> tuple[Tensor, Tensor | None]:
        """(global-classifier logits, generated-classifier logits or None), rows (B[, C])."""
        feat, temb = self.features(s)
        global_logits = self.score(
            feat[None], None if temb is None else temb[None], self.classifier.params(1)
        )[0]
        if self.ppg is None:
            return global_logits, None
        params, inverse = self.group_params(s)
        return global_logits, self.score_grouped(feat, temb, inverse, params)

    @property
    def condition(self) -> str | None:
        """What the PPG reads (``"session"`` / ``"history"``), None for a model without one."""
        return None if self.cfg.ppg is None else self.cfg.ppg.condition

    def conditioning_inputs(self, s: Samples) -> tuple[Tensor, Tensor]:
        """(inverse (B,), samples (K, R) or (K, C, H, W)): the K distinct inputs the PPG reads
        for this batch, one per session (its real-time samples) or, with ``condition
        "history"``, one per impression (its own click history), and each row's index in them."""
        if self.condition == "history":
            assert isinstance(s, ClickSamples)
            _, inverse = s.group.unique(return_inverse=True)
            return inverse, s.row_history()[first_of_groups(inverse)]
        sessions, inverse = s.session.unique(return_inverse=True)
        return inverse, s.realtime[sessions]

    def group_params(self, s: Samples) -> tuple[Params, Tensor]:
        """Generate once per distinct conditioning input in the batch (session or
        impression): K sets (K, O, I), (K, O) per layer, and each row's set (B,)."""
        inverse, samples = self.conditioning_inputs(s)
        if self.cfg.ppg is not None and self.cfg.ppg.conditioned:
            return self.generate(*self.device_inputs(samples), len(samples)), inverse
        return self.generate(None, None, len(samples)), inverse

    def generated_params(self, s: Samples) -> Params:
        """Every row's own generated set, (B, O, I) and (B, O) per layer (full ranking scores
        rows against many targets, each with its row's set)."""
        params, inverse = self.group_params(s)
        return [(w[inverse], b[inverse]) for w, b in params]

    def score_grouped(
        self, feat: Tensor, target_emb: Tensor | None, group: Tensor, params: Params
    ) -> Tensor:
        """Logits of B rows, row r with set ``group[r]`` of the K sets in ``params``.

        Rows are padded per set to (K, N, F), so each layer is one batched matmul over the
        K sets. Giving every row its own copy instead, (B, O, I), moves B / K times the
        parameters through memory and through the backward's scatter (DUET training: about
        five rows per session in a batch; the fleet: a session's hundreds of rows).
        """
        K = params[0][0].shape[0]
        counts = torch.bincount(group, minlength=K)
        start = torch.cumsum(counts, 0) - counts
        in_order = bool((group[1:] >= group[:-1]).all())  # set by set (the fleet's sessions)
        if in_order and bool((counts == counts[0]).all()):  # equal sets: a view, no padding
            shape = (K, int(counts[0]), -1)
            temb = None if target_emb is None else target_emb.reshape(shape)
            return self.score(feat.reshape(shape), temb, params).flatten(0, 1)
        if in_order:
            slot = torch.arange(len(group)) - start[group]
        else:
            order = torch.argsort(group, stable=True)
            slot = torch.empty_like(group)
            slot[order] = torch.arange(len(group)) - start[group[order]]  # rank within its set
        N = int(counts.max())
        flat = group * N + slot  # each row's place in the padded (K * N) rows

        def pad(x: Tensor) -> Tensor:  # index_copy: half the time of index_put on (K, N)
            return x.new_zeros(K * N, x.shape[1]).index_copy(0, flat, x).view(K, N, -1)

        logits = self.score(pad(feat), None if target_emb is None else pad(target_emb), params)
        return logits.flatten(0, 1)[flat]  # (B[, C])
