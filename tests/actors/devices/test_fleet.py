"""The fleet without Ray: every expected session is written once per method, a restarted fleet
resumes from what is on disk, and an unreachable generator means retries, then fallback rows."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import numpy as np
import polars as pl
import pytest

from actors.devices.config import FleetConfig, FleetPlay, RetryPolicy
from actors.devices.fleet import Fleet
from actors.devices.gateway import Generated
from actors.devices.ondevice import DeviceModels
from actors.devices.policies import Drift, EveryK
from actors.devices.profiles import COMPUTE_TIERS, NETWORK_CLASSES, sample_profiles
from actors.devices.replay import in_memory, load_replays, replayable_users
from actors.devices.shifts import ShiftPlan
from actors.observability.metrics import MetricsRecorder
from actors.service.errors import ShapeError
from actors.service.generator import GeneratorCore
from actors.service.generator_client import GeneratorClient, LocalGeneratorClient
from actors.service.messages import GenerateBatchRequest
from actors.storage.rows import ROW_SCHEMA
from actors.storage.sink import FlushPolicy, PartSink, flushed_sessions, read_sessions
from duet.adaptation import FinetuneConfig
from pipelines.shifts import build_shift

from .conftest import METHOD_OF, SESSIONS

METHODS = ("base", "duet", "finetune")


def run_fleet(
    world,
    sessions_dir,
    client=None,
    retry=None,
    done=None,
    methods=METHODS,
    metrics=None,
    method_of=None,
    policies=None,
    replays=None,
    devices_alive=4096,
    pacing=0.0,
    max_in_flight=512,
) -> dict:
    method_of = method_of or {}
    variants = {f"din/{n}": "din/duet" for n in method_of}  # every variant here runs duet's
    config = FleetConfig(
        run_id="run",
        scenario="test",
        dataset="synthetic-clicks",
        methods=methods,
        sessions_per_device=SESSIONS,
        model_keys={"din/duet": "din/duet", "din/hypernet": "din/hypernet", **variants},
        network_classes=NETWORK_CLASSES,
        compute_tiers=COMPUTE_TIERS,
        retry=retry or RetryPolicy(),
        score_batch_sessions=8,
        method_of=method_of,
        policies={f"din/{name}": p for name, p in (policies or {}).items()},
        play=FleetPlay(devices_alive=devices_alive, max_in_flight=max_in_flight),
        pacing=pacing,
    )
    sink = PartSink(sessions_dir / "fleet=0", FlushPolicy(flush_rows=20))
    fleet = Fleet(
        config,
        world["profiles"],
        replays or in_memory(world["replays"]),
        world["models"],
        client or LocalGeneratorClient(world["core"]),
        sink,
        world["shifts"],
        world["context"],
        done,
        metrics=metrics,
    )
    return asyncio.run(fleet.run())


def expected_sessions(world) -> int:
    return sum(p.num_sessions for p in world["profiles"])


def rows_of(sessions_dir) -> pl.DataFrame:
    return pl.DataFrame(read_sessions(sessions_dir))


def test_every_expected_session_once_per_method(world, tmp_path):
    progress = run_fleet(world, tmp_path)
    rows = rows_of(tmp_path)
    n = expected_sessions(world)
    assert progress.sessions == n and progress.fallback == 0
    assert dict(rows.group_by("method").len().iter_rows()) == dict.fromkeys(METHODS, n)
    assert rows.select("device_id", "session_index", "method").is_unique().all()
    assert set(ROW_SCHEMA.names) <= set(rows.columns)
    parts = rows.select(
        pl.sum_horizontal("upload_s", "generate_s", "download_s", "inference_s", "finetune_s")
    )
    assert np.allclose(parts.to_series().to_numpy(), rows["latency_s"].to_numpy())
    # only generated methods transfer; only finetune fine-tunes; nothing fell back
    assert (rows.filter(pl.col("method") != "duet")["bytes_up"] == 0).all()
    duet = rows.filter(pl.col("method") == "duet")
    assert (duet["bytes_down"] == 2112 * 4).all() and (duet["attempts"] == 1).all()
    assert (rows.filter(pl.col("method") == "finetune")["finetune_s"] > 0).all()
    assert not rows["fallback"].any()


def test_a_fleet_holding_few_devices_at_once_plays_the_same_sessions(world, tmp_path):
    """A fleet of 50,000 devices holds only ``devices_alive`` of them and their replays,
    read a block (half of it) at a time: what each session scores must not change."""
    reads = []

    def source(users):
        reads.append(users)
        return in_memory(world["replays"])(users)

    run_fleet(world, tmp_path / "all")
    run_fleet(world, tmp_path / "few", replays=source, devices_alive=4)
    assert len(reads) == 1 + len(world["profiles"]) // 2  # the calibration, then blocks of 2
    assert all(len(users) <= 2 for users in reads)
    key = ["device_id", "session_index", "method"]
    few, every = (rows_of(tmp_path / d).sort(key) for d in ("few", "all"))
    for column in [*key, "source_session", "bytes_up", "shift", "num_samples"]:
        assert few[column].to_list() == every[column].to_list(), column
    for column in ("auc", "logloss"):  # batched differently: float rounding only
        np.testing.assert_allclose(few[column].to_numpy(), every[column].to_numpy(), atol=1e-5)


def test_rows_record_profiles_shifts_and_the_virtual_clock(world, tmp_path):
    run_fleet(world, tmp_path)
    rows = rows_of(tmp_path).filter(pl.col("method") == "duet")
    by_id = {p.device_id: p for p in world["profiles"]}
    for row in rows.iter_rows(named=True):
        p = by_id[row["device_id"]]
        assert (row["network_class"], row["compute_tier"], row["upload_mode"]) == (
            p.network,
            p.compute,
            p.upload,
        )
        assert row["user_id"] == p.user_id and p.active[row["session_index"]]
        shifted = p.device_id % 2 == 1 and row["session_index"] >= 1
        assert row["shift_active"] == shifted and row["shift"] == ("genre_shift" if shifted else "")
        assert row["sim_time_s"] == pytest.approx(
            p.start_s[row["session_index"]] + row["latency_s"]
        )
        realtime = 30  # embedding upload: 30 real clicks x 32 floats; raw: 30 int32 ids
        assert row["bytes_up"] == (realtime * 32 * 4 if p.upload == "embedding" else realtime * 4)


def test_restarted_fleet_resumes_without_duplicates(world, tmp_path):
    run_fleet(world, tmp_path)
    parts = sorted((tmp_path / "fleet=0").glob("part-*.parquet"))
    lost = parts[1::2]  # as if those flushes never happened
    lost_rows = sum(pl.read_parquet(p).height for p in lost)
    for p in lost:
        p.unlink()
    done = flushed_sessions(tmp_path, [p.device_id for p in world["profiles"]])
    progress = run_fleet(world, tmp_path, done=done)
    rows = rows_of(tmp_path)
    assert progress.skipped == len(done) and progress.sessions * len(METHODS) == lost_rows
    assert rows.height == expected_sessions(world) * len(METHODS)
    assert rows.select("device_id", "session_index", "method").is_unique().all()


def test_unconditioned_hypernet_uploads_nothing(world, tmp_path):
    run_fleet(world, tmp_path, methods=("base", "hypernet"))
    hyper = rows_of(tmp_path).filter(pl.col("method") == "hypernet")
    assert hyper.height == expected_sessions(world) and not hyper["fallback"].any()
    assert (hyper["bytes_up"] == 0).all() and (hyper["bytes_down"] == 2112 * 4).all()


class Unreachable(GeneratorClient):
    """Every call fails like a dead replica; counts calls."""

    def __init__(self, failures: int = 10**9, then: GeneratorClient | None = None):
        self.failures, self.then, self.calls = failures, then, 0

    def generate(self, requests):
        raise NotImplementedError

    async def agenerate(self, requests):
        raise NotImplementedError

    async def agenerate_batch(self, batch):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("replica unreachable")
        return await self.then.agenerate_batch(batch)


class Refusing(Unreachable):
    async def agenerate_batch(self, batch):
        self.calls += 1
        raise ShapeError("items must have shape (D, R)", "items")


FAST = RetryPolicy(timeout_s=5.0, retries=2, backoff_s=0.001, deadline_s=60.0)


def test_unreachable_generator_falls_back_to_the_global_classifier(world, tmp_path):
    progress = run_fleet(world, tmp_path, client=Unreachable(), retry=FAST)
    rows = rows_of(tmp_path)
    duet = rows.filter(pl.col("method") == "duet")
    assert progress.fallback == duet.height == expected_sessions(world)
    assert duet["fallback"].all() and (duet["attempts"] == FAST.retries + 1).all()
    assert (duet["bytes_down"] == 0).all() and (duet["download_s"] == 0).all()
    assert not rows.filter(pl.col("method") != "duet")["fallback"].any()
    # the fallback is the duet checkpoint's own global head: same AUC as scoring with it directly
    replay = world["replays"][duet["user_id"][0]][0]
    score = world["models"]["din"].score([replay], [replay.session], ["duet"], {"duet": [None]})[0][
        "duet"
    ]
    first = duet.filter((pl.col("user_id") == duet["user_id"][0]) & ~pl.col("shift_active"))
    assert math.isclose(
        first.filter(pl.col("source_session") == replay.source_session)["auc"][0], score.auc
    )


def test_transient_failures_are_retried(world, tmp_path):
    client = Unreachable(failures=2, then=LocalGeneratorClient(world["core"]))
    run_fleet(world, tmp_path, client=client, retry=FAST)
    duet = rows_of(tmp_path).filter(pl.col("method") == "duet")
    assert (
        not duet["fallback"].any() and duet["attempts"].max() >= 2
    )  # two batches may share the failures


def test_refused_request_is_not_retried(world, tmp_path):
    client = Refusing()
    run_fleet(world, tmp_path, client=client, retry=FAST)
    duet = rows_of(tmp_path).filter(pl.col("method") == "duet")
    assert duet["fallback"].all() and (duet["attempts"] == 1).all()


def test_fleet_reports_attempts_shift_events_and_active_devices(world, tmp_path):
    rec = MetricsRecorder("test", shift_operators=["genre_shift"])
    client = Unreachable(failures=2, then=LocalGeneratorClient(world["core"]))
    run_fleet(world, tmp_path, client=client, retry=FAST, metrics=rec)

    def value(name: str, **labels: str) -> float | None:
        return rec.registry.get_sample_value(name, {"scenario": "test", **labels})

    assert value("duet_generator_requests_total", status="error") == 2  # then retried: "ok"
    assert value("duet_generator_requests_total", status="ok") >= 1
    # every attempt carried its batch's devices, and each device's row counts its batch's attempts
    duet = rows_of(tmp_path).filter(pl.col("method") == "duet")
    assert value("duet_generator_batch_size_sum") == duet["attempts"].sum()
    # one event when the shift reaches the fleet, touching every device of its group
    shifted = sum(1 for p in world["profiles"] if p.shifts)
    assert value("duet_shift_events_total", operator="genre_shift") == 1
    assert value("duet_shifted_devices_total", operator="genre_shift") == shifted
    assert value("duet_active_devices", fleet="0") == 0  # set (not absent) and back to 0


def test_video_fleet_uploads_frames_or_features(tmp_path):
    """The image path: raw first frames or frozen-backbone features go up, accuracy comes back."""
    import torch

    from duet.builders import mobilenet_umn
    from duet.checkpoint import save_checkpoint
    from duet.model import DeviceModel
    from pipelines.prepare import prepare
    from pipelines.shifts import image_context
    from pipelines.synthetic import SyntheticVideoConfig

    config = SyntheticVideoConfig(n_subjects=4, sessions_per_subject=3, frames_per_session=4)
    meta = prepare("synthetic-video", tmp_path / "data", knobs=config)
    info = {
        "dataset_meta": {k: meta[k] for k in ("dataset", "kind", "height", "width", "channels")}
    }
    torch.manual_seed(0)
    ckpts = {
        m: save_checkpoint(
            DeviceModel(
                mobilenet_umn("small", m, meta["num_classes"], in_channels=1, head_hidden=32)
            ),
            tmp_path / m,
            info=info,
        )
        for m in ("base", "duet")
    }
    users = replayable_users(tmp_path / "data").tolist()
    profiles = sample_profiles(
        8,
        users,
        2,
        network={"5g-50": 1},
        compute={"mid": 1},
        upload={"raw": 1, "embedding": 1},
        backbone={"mobilenet_v3_small": 1},
    )
    profiles = [dataclasses.replace(p, shifts=(0,)) for p in profiles]
    world = {
        "profiles": profiles,
        "replays": load_replays(tmp_path / "data", users),
        "models": {"mobilenet_v3_small": DeviceModels(ckpts, FinetuneConfig(steps=2))},
        "core": GeneratorCore.from_checkpoints({"mobilenet_v3_small/duet": ckpts["duet"]}),
        "shifts": [ShiftPlan("blur", build_shift({"type": "blur", "sigma": 1.0}), 1)],
        "context": image_context(tmp_path / "data")[0],
    }
    config = FleetConfig(
        run_id="run",
        scenario="video",
        dataset="synthetic-video",
        methods=METHODS,
        sessions_per_device=2,
        model_keys={"mobilenet_v3_small/duet": "mobilenet_v3_small/duet"},
        network_classes=NETWORK_CLASSES,
        compute_tiers=COMPUTE_TIERS,
    )
    sink = PartSink(tmp_path / "sessions" / "fleet=0")
    fleet = Fleet(
        config,
        profiles,
        in_memory(world["replays"]),
        world["models"],
        LocalGeneratorClient(world["core"]),
        sink,
        world["shifts"],
        world["context"],
    )
    asyncio.run(fleet.run())
    rows = rows_of(tmp_path / "sessions")
    assert rows.height == 8 * 2 * len(METHODS) and not rows["fallback"].any()
    assert rows["accuracy"].is_between(0, 1).all()
    duet = rows.filter(pl.col("method") == "duet")
    frame_bytes = 48 * 48 * 4  # one float32 1x48x48 frame; features: 576 floats
    assert set(duet["bytes_up"].to_list()) <= {frame_bytes, 576 * 4}
    assert duet.filter(pl.col("session_index") == 1)["shift"].to_list() == ["blur"] * 8


def test_history_conditioned_duet_requests_per_impression(world, prepared, tmp_path):
    """A history-conditioned DUET (the authors' code) asks for one parameter set per scored
    impression, uploading that impression's history; its rows count those requests and
    bytes, and each impression is scored with its own set, exactly as offline evaluation
    of the same session does."""
    import torch

    from actors.devices.replay import build_samples
    from duet.builders import sequence_umn
    from duet.checkpoint import load_checkpoint, save_checkpoint
    from duet.metrics import grouped_auc
    from duet.model import DeviceModel
    from pipelines.tensors import load_meta

    meta = load_meta(prepared)
    info = {
        "dataset_meta": {
            k: meta[k] for k in ("dataset", "kind", "num_items", "realtime_size", "history_length")
        }
    }
    torch.manual_seed(1)
    model = DeviceModel(
        sequence_umn(
            "din",
            "duet",
            meta["num_items"],
            condition="history",
            history_length=meta["history_length"],
        )
    )
    history_ckpt = save_checkpoint(model, tmp_path / "din-duet-history", info=info)
    of = {"duet-history": "duet"}
    models = {
        "din": DeviceModels(
            {"base": world["base_dir"], "duet-history": history_ckpt}, FinetuneConfig(), of
        )
    }
    core = GeneratorCore.from_checkpoints({"din/duet-history": history_ckpt})
    config = FleetConfig(
        run_id="run",
        scenario="test",
        dataset="synthetic-clicks",
        methods=("base", "duet-history"),
        sessions_per_device=SESSIONS,
        model_keys={"din/duet-history": "din/duet-history"},
        network_classes=NETWORK_CLASSES,
        compute_tiers=COMPUTE_TIERS,
        method_of=of,
    )
    fleet = Fleet(
        config,
        world["profiles"],
        in_memory(world["replays"]),
        models,
        LocalGeneratorClient(core),
        PartSink(tmp_path / "out" / "fleet=0"),
        world["shifts"],
        world["context"],
    )
    asyncio.run(fleet.run())
    rows = rows_of(tmp_path / "out").filter(pl.col("method") == "duet-history")
    assert rows.height == expected_sessions(world) and not rows["fallback"].any()
    impressions = rows["num_samples"] // 21  # 1 positive + 20 negatives, unshifted
    plain = rows.filter(pl.col("shift") == "")
    assert (plain["requests"] == plain["num_samples"] // 21).all() and impressions.min() > 1
    assert (rows["bytes_down"] == rows["requests"] * 2112 * 4).all()
    # one unshifted session, scored offline with the same model: the same AUC
    row = plain.row(0, named=True)
    replay = next(
        r for r in world["replays"][row["user_id"]] if r.source_session == row["source_session"]
    )
    samples = build_samples([replay], [replay.session])
    loaded, _ = load_checkpoint(history_ckpt)
    with torch.no_grad():
        logits = loaded(samples)[1]
    auc, _ = grouped_auc(logits.double().numpy(), samples.label.numpy(), samples.session.numpy())
    assert row["auc"] == pytest.approx(float(auc[0]), abs=1e-6)
    if row["upload_mode"] == "raw":
        assert row["bytes_up"] == 4 * int((samples.row_history()[samples.label == 1] != 0).sum())


def test_a_fine_tuned_session_does_not_depend_on_its_batch(world):
    """finetune samples its negatives per replayed session, not per slot in the batch, so a
    session scores the same alone as among others (the fleet batches whoever is ready)."""
    replays = [r for per_user in world["replays"].values() for r in per_user][:6]
    models = world["models"]["din"]

    def finetune(batch):
        scores = models.score(batch, [r.session for r in batch], ["finetune"], {})
        return [s["finetune"] for s in scores]

    together = finetune(replays)
    alone = [finetune([r])[0] for r in replays]
    assert [s.logloss for s in together] == pytest.approx([s.logloss for s in alone], abs=1e-5)
    assert [s.auc for s in together] == pytest.approx([s.auc for s in alone], abs=1e-6)


POLICY_METHODS = ("base", "duet", "duet-k1", "duet-once", "duet-drift")
POLICY_SET = {
    "duet-k1": EveryK(k=1),
    "duet-once": EveryK(k=100),  # asks at its first session only
    "duet-drift": Drift(threshold=0.05),
}


def test_request_policies_decide_per_device_and_keep_the_cached_parameters(world, tmp_path):
    """every_k(1) is always; every_k(100) asks once and scores later sessions with what it
    got then (no transfer, its age on the row); drift reads a score; one row per key."""
    run_fleet(world, tmp_path, methods=POLICY_METHODS, method_of=METHOD_OF, policies=POLICY_SET)
    rows = rows_of(tmp_path).sort("device_id", "session_index")
    n = expected_sessions(world)
    assert dict(rows.group_by("method").len().iter_rows()) == dict.fromkeys(POLICY_METHODS, n)
    assert rows.select("device_id", "session_index", "method").is_unique().all()
    of = {m: rows.filter(pl.col("method") == m) for m in POLICY_METHODS}
    assert of["duet-k1"]["auc"].to_list() == of["duet"]["auc"].to_list()  # same decisions
    assert set(of["duet"]["decision"]) == {"requested"} and set(of["duet"]["policy"]) == {"always"}
    once = of["duet-once"].with_columns(
        first=pl.col("session_index") == pl.col("session_index").min().over("device_id")
    )
    asked, kept = once.filter("first"), once.filter(~pl.col("first"))
    assert (asked["requests"] == 1).all() and (asked["params_age"] == 0).all()
    assert kept.height > 0 and set(kept["decision"]) == {"cached"}
    assert (kept["requests"] == 0).all() and (kept["bytes_up"] == 0).all()
    assert (kept["bytes_down"] == 0).all() and (kept["upload_s"] == 0).all()
    assert (kept["params_age"] > 0).all()
    assert (kept["model_version"] == asked["model_version"][0]).all()
    drift = of["duet-drift"]
    later = drift.filter(pl.col("decision") != "requested")
    assert drift["drift"].is_finite().sum() > 0 and (later["drift"] <= 0.05).all()
    assert set(of["base"]["decision"]) == {""} and (of["base"]["params_age"] == -1).all()


def test_a_cached_session_scores_with_the_parameters_of_its_last_request(world, tmp_path):
    """A kept session's AUC is what the parameters generated at the device's first session
    give on it: the cache holds exactly the set that arrived."""
    run_fleet(
        world, tmp_path, methods=("base", "duet-once"), method_of=METHOD_OF, policies=POLICY_SET
    )
    rows = rows_of(tmp_path).filter(pl.col("method") == "duet-once").sort("session_index")
    device = rows.filter(pl.col("decision") == "cached")["device_id"][0]
    mine = rows.filter(pl.col("device_id") == device)
    profile = next(p for p in world["profiles"] if p.device_id == device)
    first, later = mine.row(0, named=True), mine.row(1, named=True)
    replays = world["replays"][profile.user_id]
    first_replay = replays[first["session_index"] % len(replays)]
    later_replay = replays[later["session_index"] % len(replays)]
    shifted = profile.device_id % 2 == 1 and later["session_index"] >= 1
    if shifted:  # the shift changes what the device scores; compare on an unshifted device
        pytest.skip("first cached device is shifted")
    got = world["core"].generate_batch(
        GenerateBatchRequest(
            device_ids=["d"],
            model_key="din/duet",
            items=first_replay.session.realtime[None].astype(np.int32),
        )
    )
    models = world["models"]["din"]
    received = Generated([(w[0], b[0]) for w, b in got.params], 0, 0, 0.0, 0.0, 1)
    score = models.score(
        [later_replay], [later_replay.session], ["duet-once"], {"duet-once": [received]}
    )
    assert later["auc"] == pytest.approx(score[0]["duet-once"].auc, abs=1e-6)


def test_a_device_that_never_got_parameters_keeps_asking_and_falls_back(world, tmp_path):
    run_fleet(
        world,
        tmp_path,
        client=Unreachable(),
        retry=FAST,
        methods=("base", "duet-once"),
        method_of=METHOD_OF,
        policies=POLICY_SET,
    )
    once = rows_of(tmp_path).filter(pl.col("method") == "duet-once")
    assert once.height == expected_sessions(world)
    assert set(once["decision"]) == {"requested"} and once["fallback"].all()
    assert (once["params_age"] == -1).all()


def test_a_plugin_method_runs_from_its_own_file(world, tmp_path):
    """docs/plugins.md's example: registered by importing the module a scenario lists under
    plugins:, then run by a fleet like any built-in, with duet's model and generator."""
    from duet.method import METHODS
    from duet.registry import load_plugins

    load_plugins(["examples.plugins.duet_blend"])
    assert METHODS["duet-blend"].trained_as() == "duet"
    models = world["models"]["din"]
    models.method_of["duet-blend"] = "duet-blend"
    run_fleet(
        world,
        tmp_path,
        methods=("base", "duet", "duet-blend"),
        method_of={"duet-blend": "duet-blend"},
    )
    rows = rows_of(tmp_path)
    blend, duet = (
        rows.filter(pl.col("method") == m).sort("device_id", "session_index")
        for m in ("duet-blend", "duet")
    )
    base = rows.filter(pl.col("method") == "base").sort("device_id", "session_index")
    assert blend.height == expected_sessions(world) and (blend["requests"] == 1).all()
    assert (blend["bytes_down"] == duet["bytes_down"]).all()
    assert blend["logloss"].to_list() != duet["logloss"].to_list()
    assert blend["logloss"].to_list() != base["logloss"].to_list()
