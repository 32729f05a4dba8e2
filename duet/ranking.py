"""Full-ranking metrics: HR@k and NDCG@k of each test target among every item its user
has not interacted with, next to the sampled metrics (1 positive + 100 sampled negatives).

Sampled metrics can rank models differently from full ranking (Krichene and Rendle, KDD
2020, "On Sampled Metrics for Item Recommendation"), so Table 1 reports both. Every
method is ranked with the parameters it scores with: the global classifier (base), the
generated ones (per session or per impression), the per-session fine-tuned ones
(finetune), or a per-user fine-tuned model (finetune-user).

Notation used for tensor shapes: P positive rows, N items (ids 1..N, 0 pads), E embed dim.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from duet.data import ClickSamples
from duet.dynamic import Params, functional_forward
from duet.model import DeviceModel

RANKING_KS = (10, 20)
ROW_CHUNK = {False: 512, True: 8}  # positives scored against every item at once (DIN: 8)


def seen_mask(seen_ptr: Tensor, seen_items: Tensor, users: Tensor, num_items: int) -> Tensor:
    """(P, N + 1) bool: True where the row's user interacted with the item, and at 0.

    ``seen_ptr`` (U + 1,) and ``seen_items`` (nnz,) are the users' interacted items in CSR
    form (user u's are ``seen_items[seen_ptr[u]:seen_ptr[u + 1]]``).
    """
    mask = torch.zeros(len(users), num_items + 1, dtype=torch.bool)
    counts = seen_ptr[users + 1] - seen_ptr[users]
    rows = torch.repeat_interleave(torch.arange(len(users)), counts)
    starts = torch.repeat_interleave(seen_ptr[users], counts)
    offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        counts.cumsum(0) - counts, counts
    )
    mask[rows, seen_items[starts + offsets]] = True
    mask[:, 0] = True
    return mask


@torch.no_grad()
def all_item_scores(model: DeviceModel, s: ClickSamples, params: Params) -> Tensor:
    """(P, N + 1) logits of every item as the target of each row, with the row's parameters.

    A target-independent state (SASRec, GRU4Rec) is encoded once and its classifier output
    dotted with every item embedding; DIN attends with each item as the target.
    """
    backbone, cfg = model.backbone, model.cfg.classifier
    raw = backbone.item_emb.weight  # (N + 1, E)
    items = backbone.target_embed(raw)  # what targets are dotted with
    if not backbone.target_aware:
        state = backbone.encode(s.row_history(), raw[s.target])  # (P, E)
        out = functional_forward(cfg, state[:, None], params)[:, 0]  # (P, O)
        return model.head.item_logits(out, items)
    state = backbone.encode_all(s.row_history(), raw)  # (P, N + 1, E)
    out = functional_forward(cfg, state, params)  # (P, N + 1, O)
    return model.head.logits(out, items[None])


def ranks(scores: Tensor, target: Tensor, seen: Tensor) -> Tensor:
    """0-based rank of each row's target among the items not in ``seen`` (ties count half)."""
    pos = scores.gather(1, target[:, None])  # (P, 1)
    others = ~seen
    above = ((scores > pos) & others).sum(1).double()
    ties = ((scores == pos) & others).sum(1).double()
    return above + 0.5 * ties


def ranking_metrics_from_ranks(rank: Tensor, ks=RANKING_KS) -> dict[str, float]:
    out = {}
    for k in ks:
        hit = rank < k
        out[f"full_hr@{k}"] = float(hit.double().mean())
        out[f"full_ndcg@{k}"] = float(torch.where(hit, 1 / torch.log2(rank + 2), 0.0).mean())
    return out


def full_ranks(
    model: DeviceModel,
    positives: ClickSamples,
    row_params: Callable[[ClickSamples], Params],
    seen_ptr: Tensor,
    seen_items: Tensor,
) -> Tensor:
    """Ranks of ``positives``' targets, scored in chunks with ``row_params(chunk)``."""
    num_items = model.backbone.item_emb.weight.shape[0] - 1
    chunk = ROW_CHUNK[model.backbone.target_aware]
    out = []
    model.eval()
    for start in range(0, len(positives), chunk):
        s = positives.index(torch.arange(start, min(start + chunk, len(positives))))
        params = row_params(s)  # with gradients: finetune takes its Adam steps here
        scores = all_item_scores(model, s, [(w.detach(), b.detach()) for w, b in params])
        out.append(ranks(scores, s.target, seen_mask(seen_ptr, seen_items, s.user, num_items)))
    return torch.cat(out)
