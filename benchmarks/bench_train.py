"""Training-step throughput, two ways side by side in one run (this machine is noisy):

* MobileNetV3 trunks at the Table 2 input (112x112x3, batch 32): channels-last (the default,
  ``MobileNetConfig.channels_last``) against the contiguous NCHW layout;
* the click models' DUET on prepared ML-100K (batch 256): torch's default Adam against its
  fused CPU kernel (``torch.optim.Adam(fused=True)``), a lead for the training-speed work;
  its generated-classifier scoring, every row with its own copy of its session's
  parameters (the code before `DeviceModel.score_grouped`) against rows padded per session;
  and, late in an epoch (from a state trained ``--warm-steps`` steps with subnormals kept),
  the step with subnormal floats kept against flushed to zero (`duet.train.denormals_flushed`);
* SASRec's DUET with its last block run over every position (the code before) against the
  last position only, the one its state reads.

Each pair alternates for ``--repeats`` rounds on one thread; the table reports the median
samples/s of each and their ratio. The MobileNet rows use random frames (the speed of a
convolution does not depend on the pixels); the click rows the first 100 batches of the
prepared train split.

Usage:
    DUET_DATA_DIR=DIR .venv/bin/python benchmarks/bench_train.py \\
        [--prepared runs/paper/data/movielens-100k] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from duet.builders import mobilenet_umn
from duet.data import ClickSamples, ImageSamples, iterate_batches
from duet.losses import weighted_loss
from duet.model import DeviceModel
from duet.sequence import SASRecBlock
from duet.train import TrainConfig


def samples_per_s(step: Callable[[], int], steps: int) -> float:
    step()  # warm-up: allocator and oneDNN primitive caches
    start, n = time.perf_counter(), 0
    for _ in range(steps):
        n += step()
    return n / (time.perf_counter() - start)


def mobilenet_step(variant: str, channels_last: bool) -> Callable[[], int]:
    torch.manual_seed(0)
    cfg = mobilenet_umn(variant, "base", 7, head_hidden=128)
    trunk = dataclasses.replace(cfg.mobilenet, channels_last=channels_last)
    model = DeviceModel(dataclasses.replace(cfg, mobilenet=trunk)).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    zeros = torch.zeros(32, dtype=torch.long)
    batch = ImageSamples(
        pixels=torch.rand(32, 3, 112, 112),
        label=torch.randint(0, 7, (32,)),
        session=zeros,
        user=zeros,
        position=zeros,
        realtime=torch.rand(1, 3, 112, 112),
    )
    cfg = TrainConfig(epochs=1, batch_size=32)

    def step() -> int:
        loss = weighted_loss(model, batch, cfg)  # the training step of duet.train.train
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return len(batch)

    return step


def per_row_copies(model: DeviceModel) -> None:
    """Score like the code before `DeviceModel.score_grouped`: each row gets its own copy of
    its session's generated parameters, (B, O, I) per layer."""

    def score(feat, temb, group, params):  # noqa: ANN001, ANN202
        rows = [(w[group], b[group]) for w, b in params]
        return model.score(feat[:, None], None if temb is None else temb[:, None], rows)[:, 0]

    model.score_grouped = score  # type: ignore[method-assign]


def whole_sequence(model: DeviceModel) -> None:
    """Run SASRec's last block over every position, as the code before did, though the
    state reads the last one only."""

    def forward(block: SASRecBlock, x: Tensor, mask: Tensor | None, last: bool = False) -> Tensor:
        out = SASRecBlock.forward(block, x, mask)
        return out[:, -1:] if last else out

    for block in model.backbone.blocks:
        block.forward = functools.partial(forward, block)


def click_training(
    prepared: Path, backbone: str, fused: bool, patch: Callable[[DeviceModel], None] | None = None
) -> tuple[DeviceModel, torch.optim.Optimizer, TrainConfig]:
    """A DUET model on the prepared data, its Adam and its training config, seed 0."""
    from pipelines.tensors import load_meta
    from simulation.train_recipe import TrainOptions, model_config

    options = TrainOptions("movielens-100k", backbone, "duet", prepared=prepared).resolved()
    torch.manual_seed(0)
    model = DeviceModel(model_config(options, load_meta(prepared))).train()
    if patch is not None:
        patch(model)
    cfg = TrainConfig(epochs=1, batch_size=256, global_loss_weight=options.global_loss_weight)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None), cfg


def click_step(
    prepared: Path,
    backbone: str,
    fused: bool,
    batches: list,
    patch: Callable[[DeviceModel], None] | None = None,
    state: tuple[dict, dict] | None = None,
    flush: bool = False,
) -> Callable[[], int]:
    """A DUET training step on ``batches`` in turn; ``state``: (model, optimizer) state
    dicts to start from; ``flush``: subnormals flushed to zero during the step."""
    model, opt, cfg = click_training(prepared, backbone, fused, patch)
    if state is not None:
        model.load_state_dict(state[0])
        # a copy: Adam keeps the tensors it loads, so a flushed run would zero the
        # snapshot's subnormals for every later case
        opt.load_state_dict(copy.deepcopy(state[1]))
    it = iter(batches)

    def step() -> int:
        nonlocal it
        batch = next(it, None)
        if batch is None:
            it = iter(batches)
            batch = next(it)
        torch.set_flush_denormal(flush)
        loss = weighted_loss(model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.set_flush_denormal(False)
        return len(batch)

    return step


def late_state(
    prepared: Path, samples: ClickSamples, backbone: str, steps: int
) -> tuple[dict, dict]:
    """Model and Adam state after ``steps`` training steps with subnormals kept, as
    `duet.train.train` ran before `denormals_flushed`: by then the optimizer moments of
    parameters without gradients have decayed into the subnormal range."""
    model, opt, cfg = click_training(prepared, backbone, True)
    g = torch.Generator().manual_seed(0)
    for _, batch in zip(
        range(steps), iterate_batches(samples, 256, shuffle=True, generator=g), strict=False
    ):
        loss = weighted_loss(model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    moments = [v for st in opt.state.values() for k, v in st.items() if k != "step"]
    subnormal = sum(
        ((m != 0) & (m.abs() < torch.finfo(m.dtype).tiny)).sum().item() for m in moments
    )
    total = sum(m.numel() for m in moments)
    print(f"{backbone} duet after {steps} steps: {subnormal:,} of {total:,} Adam moments subnormal")
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


# (model, comparison, choice, a factory of its step, timed steps); each comparison is a
# pair of consecutive cases, the first the one before
Case = tuple[str, str, str, Callable[[], Callable[[], int]], int]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--prepared", type=Path, default=None, help="prepared ML-100K (click rows)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--only",
        choices=("layout", "Adam", "scoring", "subnormals", "last block"),
        default=None,
        help="one comparison",
    )
    p.add_argument(
        "--warm-steps", type=int, default=1500, help="subnormals: steps trained before timing"
    )
    return p.parse_args()


def mobilenet_cases() -> list[Case]:
    """The layout pairs: contiguous against channels-last, for both MobileNetV3 trunks."""
    cases: list[Case] = []
    for variant in ("large", "small"):
        for label, flag in (("contiguous", False), ("channels-last", True)):
            make = lambda v=variant, f=flag: mobilenet_step(v, f)  # noqa: E731
            cases.append((f"mobilenet_v3_{variant} base, 112x112x3", "layout", label, make, 6))
    return cases


def click_cases(prepared: Path, warm_steps: int) -> list[Case]:
    """The click models' pairs on the first 100 batches of the prepared train split: Adam,
    scoring and subnormals for every backbone, then SASRec's last block.

    The steps are built lazily (``make``), so a case's model exists only while it is timed,
    and the late state of a backbone is trained once, when its first subnormals case runs.
    """
    from pipelines.tensors import load_samples

    samples = load_samples(prepared, "train")
    g = torch.Generator().manual_seed(0)
    batches = [
        b
        for _, b in zip(
            range(100), iterate_batches(samples, 256, shuffle=True, generator=g), strict=False
        )
    ]
    cases: list[Case] = []
    for backbone in ("sasrec", "gru4rec", "din"):
        for label, fused in (("default", False), ("fused", True)):
            make = lambda b=backbone, f=fused: click_step(prepared, b, f, batches)  # noqa: E731
            cases.append((f"{backbone} duet, ML-100K", "Adam", label, make, 60))
        for label, copies in (("per-row copies", True), ("grouped", False)):
            make = lambda b=backbone, c=copies: click_step(  # noqa: E731
                prepared, b, False, batches, per_row_copies if c else None
            )
            cases.append((f"{backbone} duet, ML-100K", "scoring", label, make, 60))
        late = functools.cache(  # trained once, when a subnormals case first runs
            lambda b=backbone: late_state(prepared, samples, b, warm_steps)
        )
        for label, flush in (("kept", False), ("flushed", True)):
            make = lambda b=backbone, f=flush, s=late: click_step(  # noqa: E731
                prepared, b, True, batches, state=s(), flush=f
            )
            cases.append((f"{backbone} duet, ML-100K, late", "subnormals", label, make, 60))
    for label, whole in (("every position", True), ("last position", False)):
        make = lambda w=whole: click_step(  # noqa: E731
            prepared, "sasrec", True, batches, whole_sequence if w else None, flush=True
        )
        cases.append(("sasrec duet, ML-100K", "last block", label, make, 60))
    return cases


def print_table(cases: list[Case], repeats: int) -> None:
    """Time every case ``repeats`` times, alternating the members of each pair round by
    round (this machine is noisy), and print the medians and their ratio per pair."""
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(repeats):
        for model, _, label, make, steps in cases:
            rates.setdefault((model, label), []).append(samples_per_s(make(), steps))
    print("| model | choice | samples/s (median) | samples/s (median) | ratio |")
    print("|---|---|---:|---:|---:|")
    for i in range(0, len(cases), 2):
        (model, what, a, *_), (_, _, b, *_) = cases[i], cases[i + 1]
        ra, rb = statistics.median(rates[(model, a)]), statistics.median(rates[(model, b)])
        print(f"| {model} | {what}: {a} / {b} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f}x |")


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    cases = mobilenet_cases()
    if args.prepared is not None:
        cases += click_cases(args.prepared, args.warm_steps)
    if args.only is not None:
        cases = [c for c in cases if c[1] == args.only]
    print_table(cases, args.repeats)


if __name__ == "__main__":
    main()
