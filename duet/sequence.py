"""Click-sequence backbones (the static layers Θ_b): SASRec, GRU4Rec and DIN.

Each maps a click history and a target item to a user state and the target's embedding;
the dynamic classifier (duet/dynamic.py) turns the state into a vector that is dotted
with the target embedding. Follows the reference configs of the DUET repository
(embedding dim 32, history 30) and the original papers (Kang & McAuley 2018; Hidasi et
al. 2016; Zhou et al. 2018).

Notation used for tensor shapes: B batch, L history length, E embedding dim.
Item id 0 is padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from duet.data import first_of_groups


@dataclass(frozen=True)
class SequenceConfig:
    """Backbone sizes and the choices the parity with the authors' code compares
    (docs/results.md, "Parity"); the authors' SASRec is ``num_blocks=1, ffn_mult=4,
    dropout=0, norm_first=False, causal=False, input_transform=True, target_tower=True``."""

    num_items: int  # real items are 1..num_items, 0 pads
    embed_dim: int = 32
    history_length: int = 30
    num_heads: int = 4  # SASRec only
    num_blocks: int = 2  # SASRec only
    dropout: float = 0.1
    ffn_mult: int = 1  # SASRec: feed-forward width in units of embed_dim (theirs: 4)
    pos_std: float = 1.0  # SASRec: init std of the learned positions (theirs: xavier, ~0.05)
    norm_first: bool = True  # SASRec: pre-LN blocks and a final LN (theirs: post-LN)
    causal: bool = True  # SASRec: causal + padding mask (theirs: none, attends to everything)
    input_transform: bool = False  # SASRec: Linear+Tanh on item + position (theirs)
    target_tower: bool = False  # all: Linear-Tanh-Linear on the target before the dot (theirs)

    def __post_init__(self) -> None:
        if self.num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {self.num_items}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})"
            )


class SequenceBackbone(nn.Module):
    """Shared part of the three backbones: the item embedding table (also used on device
    to embed real-time clicks for embedding upload, paper Table 3)."""

    target_aware = False  # True when the user state depends on the target (DIN)

    def __init__(self, cfg: SequenceConfig):
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.num_items + 1, cfg.embed_dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        E = cfg.embed_dim
        self.target_tower = (
            nn.Sequential(nn.Linear(E, E), nn.Tanh(), nn.Linear(E, E))
            if cfg.target_tower
            else nn.Identity()
        )

    @property
    def feature_dim(self) -> int:
        return self.cfg.embed_dim

    def embed(self, items: Tensor) -> Tensor:
        return self.item_emb(items)

    def target_embed(self, raw: Tensor) -> Tensor:
        """What a target is dotted with: its embedding, through the item tower if any."""
        return self.target_tower(raw)

    def encode(self, history: Tensor, target_emb: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(
        self, history: Tensor, target: Tensor, group: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Returns (user state (B, E), target embedding (B, E)).

        Rows sharing a ``group`` share their history (a positive and its sampled
        negatives); unless the state depends on the target, it is encoded once per group,
        which saves 5x in training and 101x at test time.
        """
        raw = self.item_emb(target)  # (B, E): what DIN attends with
        target_emb = self.target_embed(raw)
        if group is None or self.target_aware:
            return self.encode(history, raw), target_emb
        _, inverse = group.unique(return_inverse=True)
        first = first_of_groups(inverse)
        state = self.encode(history[first], raw[first])  # (G, E)
        return state[inverse], target_emb


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: SequenceConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        B, L, E = x.shape
        q, k, v = self.qkv(x).split(E, dim=2)
        q, k, v = (
            t.view(B, L, self.num_heads, E // self.num_heads).transpose(1, 2) for t in (q, k, v)
        )
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, nh, L, hs)
        return self.proj(y.transpose(1, 2).reshape(B, L, E))


class SASRecBlock(nn.Module):
    def __init__(self, cfg: SequenceConfig):
        super().__init__()
        E, hidden = cfg.embed_dim, cfg.ffn_mult * cfg.embed_dim
        self.norm_first = cfg.norm_first
        self.ln1 = nn.LayerNorm(E)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(E)
        self.ffn = nn.Sequential(
            nn.Linear(E, hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(hidden, E)
        )

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if self.norm_first:  # pre-LN (ours)
            x = x + self.attn(self.ln1(x), mask)
            return x + self.ffn(self.ln2(x))
        x = self.ln1(x + self.attn(x, mask))  # post-LN, nn.TransformerEncoderLayer's default
        return self.ln2(x + self.ffn(x))


class SASRec(SequenceBackbone):
    """Self-attentive sequential recommendation; the state is the last position's output."""

    def __init__(self, cfg: SequenceConfig):
        super().__init__(cfg)
        E = cfg.embed_dim
        self.pos_emb = nn.Embedding(cfg.history_length, E)
        nn.init.normal_(self.pos_emb.weight, std=cfg.pos_std)
        self.input_transform = (
            nn.Sequential(nn.Linear(E, E), nn.Tanh()) if cfg.input_transform else nn.Identity()
        )
        self.blocks = nn.ModuleList(SASRecBlock(cfg) for _ in range(cfg.num_blocks))
        self.ln_f = nn.LayerNorm(E) if cfg.norm_first else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, history: Tensor, target_emb: Tensor) -> Tensor:
        B, L = history.shape
        assert self.cfg.history_length >= L, f"history {L} > configured {self.cfg.history_length}"
        pos = torch.arange(L, device=history.device)
        x = self.drop(self.input_transform(self.item_emb(history) + self.pos_emb(pos)))  # (B, L, E)
        mask = None  # the authors' encoder attends to every position, padding included
        if self.cfg.causal:
            # causal over real clicks; the diagonal stays open so an all-padding row has no NaN
            causal = torch.ones(L, L, dtype=torch.bool, device=history.device).tril()
            keep = causal & (history != 0)[:, None, :] | torch.eye(L, dtype=torch.bool)
            mask = keep[:, None]  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_f(x[:, -1])  # (B, E)


class GRU4Rec(SequenceBackbone):
    """Session-based recommendation with a GRU; the state is the final hidden state."""

    def __init__(self, cfg: SequenceConfig):
        super().__init__(cfg)
        self.gru = nn.GRU(cfg.embed_dim, cfg.embed_dim, batch_first=True)
        self.drop = nn.Dropout(cfg.dropout)

    def encode(self, history: Tensor, target_emb: Tensor) -> Tensor:
        # left padding: zero inputs come first, so the last step always sees real clicks
        _, h = self.gru(self.drop(self.item_emb(history)))  # h: (1, B, E)
        return h[0]


class DIN(SequenceBackbone):
    """Deep Interest Network: target attention pools the history (unnormalized weights)."""

    target_aware = True

    def __init__(self, cfg: SequenceConfig):
        super().__init__(cfg)
        E = cfg.embed_dim
        self.attn = nn.Sequential(nn.Linear(4 * E, 36), nn.Sigmoid(), nn.Linear(36, 1))
        self.out = nn.Sequential(nn.Linear(2 * E, E), nn.ReLU())

    def encode(self, history: Tensor, target_emb: Tensor) -> Tensor:
        h = self.item_emb(history)  # (B, L, E)
        t = target_emb[:, None].expand_as(h)
        w = self.attn(torch.cat([h, t, h - t, h * t], dim=-1)).squeeze(-1)  # (B, L)
        w = w * (history != 0)
        pooled = (w[..., None] * h).sum(1)  # (B, E)
        return self.out(torch.cat([pooled, h[:, -1]], dim=-1))

    def encode_all(self, history: Tensor, targets: Tensor) -> Tensor:
        """:meth:`encode` of every row's history with every target: (P, L) ids and (N, E)
        target embeddings -> (P, N, E) states, for full ranking.

        The attention's first layer is linear in its input [h, t, h - t, h * t], so it
        splits into h (Wa + Wc), t (Wb - Wc) and (h * t) Wd: the first two are computed once
        per history position and once per target rather than once per pair, and nothing of
        width 4E is built per pair (4x fewer multiplies, and no (P N L, 4E) tensor).
        """
        E = self.cfg.embed_dim
        h = self.item_emb(history)  # (P, L, E)
        first, second = self.attn[0], self.attn[2]
        wa, wb, wc, wd = first.weight.split(E, dim=1)  # (36, E) each
        per_h = h @ (wa + wc).T + first.bias  # (P, L, 36)
        per_t = targets @ (wb - wc).T  # (N, 36)
        pair = targets @ (h[..., None] * wd.T)  # (N, E) @ (P, L, E, 36) -> (P, L, N, 36)
        hidden = torch.sigmoid(per_h[:, :, None] + per_t[None, None] + pair)
        w = (hidden @ second.weight.T).squeeze(-1) + second.bias  # (P, L, N)
        w = w * (history != 0)[..., None]
        pooled = torch.einsum("pln,ple->pne", w, h)  # (P, N, E)
        wp, wl = self.out[0].weight.split(E, dim=1)
        last = h[:, -1] @ wl.T + self.out[0].bias  # (P, E)
        return torch.relu(pooled @ wp.T + last[:, None])  # (P, N, E)


SEQUENCE_BACKBONES: dict[str, type[SequenceBackbone]] = {
    "sasrec": SASRec,
    "gru4rec": GRU4Rec,
    "din": DIN,
}
