"""SASRec's hand-written attention and its last-position-only last block compute what
torch's attention and the whole-sequence block compute, dropout included: the training
speed-up (benchmarks/RESULTS.md) must not change the model."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from duet.sequence import SASRec, SASRecBlock, SequenceConfig, attention

CFG = SequenceConfig(num_items=50, embed_dim=16, history_length=12, num_heads=4, ffn_mult=2)


def padded_history(B: int = 6, L: int = 12) -> torch.Tensor:
    """Left-padded click histories of different lengths, one of them empty."""
    g = torch.Generator().manual_seed(1)
    history = torch.randint(1, CFG.num_items + 1, (B, L), generator=g)
    for row, length in enumerate((0, 1, 3, 7, 11, 12)[:B]):
        history[row, : L - length] = 0
    return history


def causal_mask(history: torch.Tensor) -> torch.Tensor:
    L = history.shape[1]
    keep = torch.ones(L, L, dtype=torch.bool).tril() & (history != 0)[:, None, :]
    return (keep | torch.eye(L, dtype=torch.bool))[:, None]  # (B, 1, L, L)


def additive(keep: torch.Tensor) -> torch.Tensor:
    """The float mask torch makes of a boolean one: 0 where attended, -inf elsewhere."""
    return torch.zeros(keep.shape).masked_fill_(~keep, float("-inf"))


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_attention_is_torchs_attention_with_the_same_dropout(p):
    history = padded_history()
    q, k, v = torch.randn(3, 6, 4, 12, 4).unbind(0)
    keep = causal_mask(history)
    torch.manual_seed(7)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
    torch.manual_seed(7)
    ours = attention(q, k, v, additive(keep), p, last=False)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)
    torch.manual_seed(7)
    last = attention(q, k, v, additive(keep), p, last=True)
    torch.testing.assert_close(last, theirs[:, :, -1:], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_the_last_position_of_a_block_is_that_of_the_whole_block(norm_first, training):
    """Same seed, same dropout draws: the last row of the whole block, output and
    gradients, is what the last-position block computes."""
    torch.manual_seed(0)
    block = SASRecBlock(dataclasses.replace(CFG, dropout=0.2, norm_first=norm_first))
    block.train(training)
    history = padded_history()
    mask = additive(causal_mask(history))
    x = torch.randn(6, 12, 16, requires_grad=True)
    outputs, grads = [], []
    for last in (False, True):
        torch.manual_seed(3)
        out = block(x, mask, last=last)[:, -1]
        (g,) = torch.autograd.grad(out.square().sum(), x)
        outputs.append(out)
        grads.append(g)
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)


def test_sasrec_draws_as_many_random_numbers_either_way():
    """Dropout masks are drawn whole in the last block, so the random stream after an
    encode (what the next batch's masks come from) does not depend on the shortcut."""
    torch.manual_seed(0)
    model = SASRec(dataclasses.replace(CFG, dropout=0.2)).train()
    history = padded_history()
    torch.manual_seed(5)
    model.encode(history, torch.zeros(6, 16))
    after_encode = torch.rand(4)
    torch.manual_seed(5)
    x = model.drop(model.input_transform(model.item_emb(history) + model.pos_emb.weight))
    mask = additive(causal_mask(history))
    for block in model.blocks:
        x = block(x, mask)
    torch.testing.assert_close(torch.rand(4), after_encode, atol=0, rtol=0)
