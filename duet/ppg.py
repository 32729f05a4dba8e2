"""Personalized Parameters Generator (PPG, paper Eq. 4-6) with the Stable Weight Adapter
(SWA, Eq. 8-9), and the plain HyperNetwork baseline (Appendix A.1).

Pipeline for D devices at once (no Python loop over devices):
    real-time inputs (D, R, In) --E_share--> z (D, H)
    z --L^(n)--> e^(n) (D, K, Z)            one head per layer n and row block k (Eq. 4)
    e^(n) --g^(n)--> W^(n) (D, O, I), b^(n) (D, O)

Notation used for tensor shapes: D devices, R real-time samples, In per-sample input
width, H neck width, K row blocks of a layer, Z layer embedding dim (64, paper Table 5),
G generator hidden width, P = N_p generators, O/I a dynamic layer's output/input width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from duet.dynamic import ClassifierConfig, Params
from duet.names import CONDITIONS, DEFAULT_CONDITION, DEFAULT_NECK, NECKS


@dataclass(frozen=True)
class PPGConfig:
    input_dim: (
        int  # width of one real-time sample as the neck sees it (item embedding, image feature)
    )
    neck: str = DEFAULT_NECK  # "gru" / "gru-mean" over click sequences; images pool by mean
    hidden_dim: int = 64  # z = E_share(S_R)
    layer_embed_dim: int = 64  # e^(n), paper Table 5
    generator_hidden: int = 64  # hidden width of each two-layer g^(n)
    num_generators: int = 5  # N_p; 1 is "DUET (w/o SWA)"
    tau: float = 1.0  # SWA temperature
    max_block_params: int = 16384  # Eq. 4: a layer with more weights is generated in row blocks
    conditioned: bool = True  # False: plain HyperNetwork, a learned latent per layer, no data
    condition: str = DEFAULT_CONDITION  # "session": real-time samples; "history": each row's own
    init_scale: float = (
        1.0  # std of the data-dependent part of W^(n) at init, in units of 1/sqrt(I)
    )

    def __post_init__(self) -> None:
        if self.neck not in NECKS:
            raise ValueError(f"neck must be one of {NECKS}, got {self.neck!r}")
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {self.condition!r}")
        if self.num_generators < 1:
            raise ValueError(f"num_generators (N_p) must be >= 1, got {self.num_generators}")
        if self.tau <= 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")


class SharedNeck(nn.Module):
    """E_share: one vector per device from its real-time samples (Eq. 5).

    Clicks: item embeddings -> GRU -> MLP. Images: frozen backbone features -> masked
    mean -> MLP. Padding positions (mask False) are ignored. Inputs are layer-normed first:
    item embeddings start tiny (std 0.05) and image features large, and without it the
    devices' differences reach the generators too faint to learn from (measured: neck
    gradients ~1e-6 and no use of the real-time samples).
    """

    def __init__(self, cfg: PPGConfig):
        super().__init__()
        self.norm = nn.LayerNorm(cfg.input_dim)
        self.gru = (
            nn.GRU(cfg.input_dim, cfg.hidden_dim, batch_first=True) if "gru" in cfg.neck else None
        )
        self.mean = "mean" in cfg.neck
        width = (cfg.hidden_dim if self.gru is not None else 0) + (
            cfg.input_dim if self.mean else 0
        )
        self.mlp = nn.Sequential(
            nn.Linear(width, cfg.hidden_dim),
            nn.ReLU(),
            nn.Linear(cfg.hidden_dim, cfg.hidden_dim),
            nn.LayerNorm(cfg.hidden_dim),  # z at unit scale, so head(z) is not its bias alone
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.norm(x) * mask[..., None]  # (D, R, In)
        pooled = []
        if self.gru is not None:
            _, h = self.gru(x)  # left padding: the final state has seen every real sample
            pooled.append(h[0])  # (D, H)
        if self.mean:
            pooled.append(x.sum(1) / mask.sum(1, keepdim=True).clamp(min=1))  # (D, In)
        return self.mlp(torch.cat(pooled, dim=-1))  # (D, H)


def swa_weights(first_layer_weights: Tensor, tau: float) -> Tensor:
    """Eq. 9: p from the N_p generators' first-layer weights (P, G, Z) -> (P,).

    W' has one flattened generator per row; S = W' W'^T; p' are S's row sums;
    p = softmax((p'/τ) / Σ_j (p'_j/τ)). Written exactly as in the paper: note that τ
    cancels in that ratio, so τ changes nothing numerically in this form.
    """
    w = first_layer_weights.flatten(1)  # (P, G*Z)
    p_raw = (w @ w.T).sum(1)  # (P,)
    scaled = p_raw / tau
    return torch.softmax(scaled / scaled.sum(), dim=0)


class LayerGenerator(nn.Module):
    """L^(n) heads and the SWA-combined two-layer generator g^(n) for one dynamic layer."""

    def __init__(self, cfg: PPGConfig, out_dim: int, in_dim: int):
        super().__init__()
        self.cfg, self.out_dim, self.in_dim = cfg, out_dim, in_dim
        self.blocks = max(1, math.ceil(out_dim * in_dim / cfg.max_block_params))  # K
        self.rows = math.ceil(out_dim / self.blocks)  # rows of W generated per block
        out_size = self.rows * (in_dim + 1)  # weight rows + their biases
        P, G, Z = cfg.num_generators, cfg.generator_hidden, cfg.layer_embed_dim
        if cfg.conditioned:
            self.head = nn.Linear(cfg.hidden_dim, self.blocks * Z)  # K heads L^(n,k) in one matmul
        else:
            self.latent = nn.Parameter(torch.randn(self.blocks, Z))  # HyperNetwork's z^(n)
        self.w1 = nn.Parameter(torch.randn(P, G, Z) / math.sqrt(Z))
        self.b1 = nn.Parameter(torch.zeros(P, G))
        # e is layer-normed, so h = relu(w1 e) has E[h^2] = 1/2 and W^(n) starts with std
        # init_scale/sqrt(I), all of it data-dependent. A static b2 of nn.Linear's scale
        # would dominate the per-device part (~1e-2 of it, measured) and the generator
        # would learn to ignore its input.
        self.w2 = nn.Parameter(
            torch.randn(P, out_size, G) * cfg.init_scale * math.sqrt(2 / (G * in_dim))
        )
        self.b2 = nn.Parameter(torch.zeros(P, out_size))

    def mixing(self) -> Tensor:
        """SWA probabilities p (P,); exactly [1.0] when N_p = 1."""
        return swa_weights(self.w1, self.cfg.tau)

    def forward(self, z: Tensor | None, num_devices: int) -> tuple[Tensor, Tensor]:
        p = self.mixing()
        w1, b1 = torch.einsum("p,pgz->gz", p, self.w1), p @ self.b1  # Eq. 8
        w2, b2 = torch.einsum("p,pog->og", p, self.w2), p @ self.b2
        if z is None:
            e = self.latent.expand(num_devices, *self.latent.shape)  # (D, K, Z)
        else:
            e = self.head(z).view(num_devices, self.blocks, -1)  # (D, K, Z)
            e = F.layer_norm(e, e.shape[-1:])
        h = F.relu(F.linear(e, w1, b1))  # (D, K, G)
        out = F.linear(h, w2, b2).view(num_devices, self.blocks * self.rows, self.in_dim + 1)
        out = out[:, : self.out_dim]  # drop the padding rows of the last block
        return out[..., :-1], out[..., -1]  # (D, O, I), (D, O)


class PPG(nn.Module):
    """Generates every dynamic layer's parameters for a batch of devices."""

    def __init__(self, cfg: PPGConfig, classifier: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.neck = SharedNeck(cfg) if cfg.conditioned else None
        self.layers = nn.ModuleList(LayerGenerator(cfg, o, i) for o, i in classifier.shapes)

    def forward(self, realtime: Tensor | None, mask: Tensor | None, num_devices: int) -> Params:
        """realtime (D, R, In) and mask (D, R), or None for the unconditioned HyperNetwork."""
        z = None
        if self.neck is not None:
            assert realtime is not None and mask is not None, (
                "conditioned PPG needs real-time samples"
            )
            z = self.neck(realtime, mask.to(realtime.dtype))
        return [layer(z, num_devices) for layer in self.layers]
