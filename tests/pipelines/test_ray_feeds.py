"""Ray Data edges: iter_torch_batches over a prepared split, streaming_split of sessions."""

from __future__ import annotations

import threading

import polars as pl
import pytest
import torch

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()


def test_training_batches(ray_cluster, prepared_clicks, prepared_video):
    from pipelines.feeds import training_batches
    from pipelines.tensors import load_meta

    expected = pl.read_parquet(prepared_clicks / "train.parquet").height
    history = load_meta(prepared_clicks)["history_length"]
    seen = 0
    for batch in training_batches(prepared_clicks, "train", 256):
        assert batch["history"].shape[1:] == (history,) and batch["negatives"].shape[1:] == (4,)
        assert batch["target"].dtype == torch.int32
        seen += len(batch["target"])
    assert seen == expected
    batch = next(training_batches(prepared_video, "test", 8, shuffle_seed=0))
    assert batch["pixels"].shape == (8, 48 * 48) and batch["pixels"].dtype == torch.uint8
    assert "source" not in batch


def test_session_stream_splits_every_session_once(ray_cluster, prepared_clicks):
    from pipelines.feeds import session_stream, to_polars

    iterators = session_stream(prepared_clicks, 2, split="test")
    got: list[list[int]] = [[], []]

    def consume(i: int) -> None:  # consumers must run concurrently
        for batch in iterators[i].iter_batches(batch_size=16, batch_format="pyarrow"):
            got[i] += to_polars(batch)["session"].to_list()

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    sessions = pl.read_parquet(prepared_clicks / "sessions.parquet")
    expected = set(sessions.filter(pl.col("split") == "test")["session"].to_list())
    assert got[0] and got[1]
    assert sorted(got[0] + got[1]) == sorted(expected)
