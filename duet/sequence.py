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

import math
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


def dropout_noise(shape: tuple[int, ...], p: float) -> Tensor | None:
    """The scaled keep-mask ``F.dropout`` draws for an input of ``shape`` (None when p is 0).

    Drawn whole even where only part of it is used (the last block reads its last position
    only): ``F.dropout`` on CPU is ``input * empty_like(input).bernoulli_(1 - p) / (1 - p)``,
    so drawing the same shape from the same generator keeps the masks, and every later
    draw, what they are with the layer applied to the whole sequence.
    """
    if p == 0:
        return None
    return torch.empty(shape).bernoulli_(1 - p).div_(1 - p)


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float, last: bool) -> Tensor:
    """Scaled dot-product attention of q, k, v (B, nh, L, hs), with an additive float
    ``mask`` (B, 1, L, L) and dropout ``p`` on the weights; ``last``: the last query only.

    With dropout, ``F.scaled_dot_product_attention`` runs its math kernel on CPU; this is
    that kernel's arithmetic op for op (q and k each scaled by hs^-1/4, the mask added,
    softmax, dropout, @ v: equal to it to float rounding, tests/duet/test_sequence.py; the
    matmul of one query may sum in another order than that of L queries) without its
    fully-masked-row guard (``_safe_softmax``'s isneginf, all and where, 1.4 ms of a 5 ms
    forward and backward here: the diagonal is always open, so no row is fully masked),
    and with ``last``, the weights of one query instead of L. Without dropout (evaluation,
    the authors' configuration), torch picks its fastest kernel.
    """
    if last:
        q = q[:, :, -1:]
    if p == 0:
        m = None if mask is None else mask[:, :, -q.shape[2] :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    B, nh, L, _ = k.shape
    noise = dropout_noise((B, nh, L, L), p)
    assert noise is not None
    scale = math.sqrt(1 / math.sqrt(q.shape[-1]))
    a = torch.matmul(q * scale, k.transpose(-2, -1) * scale)
    if mask is not None:
        a = a + mask[:, :, -q.shape[2] :]
    return torch.matmul(torch.softmax(a, -1) * noise[:, :, -q.shape[2] :], v)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: SequenceConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor, mask: Tensor | None, last: bool = False) -> Tensor:
        """x (B, L, E) -> (B, L, E), or with ``last`` the last position's output (B, 1, E)."""
        B, L, E = x.shape
        q, k, v = (
            t.view(B, L, self.num_heads, E // self.num_heads).transpose(1, 2)
            for t in self.qkv(x).split(E, dim=2)
        )
        p = self.dropout if self.training else 0.0
        y = attention(q, k, v, mask, p, last)  # (B, nh, L or 1, hs)
        return self.proj(y.transpose(1, 2).reshape(B, y.shape[2], E))


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

    def forward(self, x: Tensor, mask: Tensor | None, last: bool = False) -> Tensor:
        """x (B, L, E) -> (B, L, E); with ``last``, the last position only (B, 1, E): what the
        state reads of the last block, at 1/L of its attention weights and feed-forward."""
        L = x.shape[1]
        rest = x[:, -1:] if last else x
        if self.norm_first:  # pre-LN (ours)
            x = rest + self.attn(self.ln1(x), mask, last)
            return x + self.feed_forward(self.ln2(x), L)
        x = self.ln1(rest + self.attn(x, mask, last))  # post-LN, nn.TransformerEncoderLayer's
        return self.ln2(x + self.feed_forward(x, L))

    def feed_forward(self, x: Tensor, length: int) -> Tensor:
        """``self.ffn`` on the last x.shape[1] of ``length`` positions, its dropout drawn for
        all of them (:func:`dropout_noise`)."""
        up, act, drop, down = self.ffn
        h = act(up(x))
        noise = dropout_noise((h.shape[0], length, h.shape[2]), drop.p if self.training else 0)
        return down(h if noise is None else h * noise[:, -h.shape[1] :])


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
            # additive, as torch turns a boolean mask: 0 where attended, -inf elsewhere
            mask = torch.zeros(keep.shape).masked_fill_(~keep, float("-inf"))[:, None]
        for i, block in enumerate(self.blocks):  # the state reads the last position only
            x = block(x, mask, last=i == len(self.blocks) - 1)
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
