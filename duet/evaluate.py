"""Offline evaluation of every method on the same code path: each method's logits
(duet/method.py ``eval_logits``), its metrics, full ranking, and the time to adapt one
device (the paper's "time delay", Table 1)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from duet.data import ClickSamples, Samples, iterate_batches
from duet.metrics import click_metrics, image_metrics
from duet.model import DeviceModel
from duet.ranking import ranking_metrics_from_ranks

if TYPE_CHECKING:
    from duet.method import Method


@torch.no_grad()
def predict(model: DeviceModel, samples: Samples, batch_size: int = 4096) -> Tensor:
    """The model's logits for every row (generated, else global), in row order.

    Written into one tensor allocated up front, and each batch dropped before the next is
    built: keeping every batch's small logits tensor alive (a list to concatenate) left one
    long-lived chunk inside each batch's freed temporaries, so glibc's heap could not reuse
    them and grew by ~10 MB a batch (DIN base on ML-100K test, 233 batches of 4096 rows:
    0.6 GB before predict, 0.9-2.9 GB after, varying run to run; 0.8 GB this way).
    """
    model.eval()
    out: Tensor | None = None
    start = 0
    for batch in iterate_batches(samples, batch_size, shuffle=False):
        global_logits, gen_logits = model(batch)
        logits = global_logits if gen_logits is None else gen_logits
        if out is None:
            out = logits.new_empty(len(samples), *logits.shape[1:])
        out[start : start + len(logits)] = logits
        start += len(logits)
        del batch, global_logits, gen_logits, logits  # freed before the next batch is built
    if out is None:
        raise ValueError("predict: no rows to score")
    return out


def sample_metrics(logits: Tensor, samples: Samples) -> dict[str, float]:
    """Every metric of ``logits`` scored against ``samples``' labels."""
    if isinstance(samples, ClickSamples):
        return click_metrics(logits, samples.label, samples.session, samples.user, samples.group)
    return image_metrics(logits, samples.label, samples.session, samples.user)


def full_ranking(
    model: DeviceModel, samples: ClickSamples, method: Method, seen: tuple[Tensor, Tensor]
) -> dict[str, float]:
    """``full_hr@k`` / ``full_ndcg@k``: each positive's target ranked against every item its
    user never interacted with (``seen``: the users' items in CSR form), with the
    parameters ``method`` scores that row with."""
    positives = samples.index((samples.label > 0.5).nonzero().squeeze(1))
    return ranking_metrics_from_ranks(method.full_ranks(model, positives, seen))


def adaptation_ms(model: DeviceModel, samples: Samples, method: Method, repeats: int = 5) -> float:
    """Median wall time on this CPU of adapting one device's classifier
    (:meth:`Method.adaptation_work`); 0 for a method with nothing to adapt."""
    work = method.adaptation_work(model, samples.index(torch.tensor([0])))
    if work is None:
        return 0.0
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return 1000 * sorted(timings)[len(timings) // 2]


def evaluate(model: DeviceModel, samples: Samples, method: Method) -> dict[str, float]:
    """Metrics of ``method`` on ``samples`` (an adapting method adapts ``model`` first)."""
    metrics = sample_metrics(method.eval_logits(model, samples), samples)
    metrics["latency_ms"] = adaptation_ms(model, samples, method)
    return metrics
