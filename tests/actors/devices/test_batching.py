"""MicroBatcher keeps `@serve.batch`'s contract: same length and order out, one exception for
every caller of a failed batch, and at most ``max_concurrent`` batches at once."""

from __future__ import annotations

import asyncio

import pytest

from actors.devices.batching import MicroBatcher


def test_results_in_order_and_batches_bounded():
    sizes = []

    async def double(items):
        sizes.append(len(items))
        return [2 * x for x in items]

    async def main():
        batcher = MicroBatcher(double, max_items=4, window_s=0.01)
        return await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    assert asyncio.run(main()) == [2 * i for i in range(10)]
    assert sum(sizes) == 10 and max(sizes) <= 4


def test_failure_reaches_every_caller_of_the_batch():
    async def boom(items):
        raise ConnectionError("down")

    async def main():
        batcher = MicroBatcher(boom, max_items=3, window_s=0.01)
        return await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, ConnectionError) for r in asyncio.run(main()))


def test_wrong_result_length_is_an_error():
    async def short(items):
        return items[:-1]

    async def main():
        return await MicroBatcher(short, max_items=2, window_s=0.0).submit(1)

    with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
        asyncio.run(main())


def test_one_batch_at_a_time_gathers_the_rest():
    running, peak, sizes = 0, 0, []
    started = asyncio.Event()

    async def slow(items):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        sizes.append(len(items))
        started.set()
        await asyncio.sleep(0.01)
        running -= 1
        return items

    async def main():
        batcher = MicroBatcher(slow, max_items=100, window_s=0.0, max_concurrent=1)
        first = asyncio.ensure_future(batcher.submit(0))
        await started.wait()  # the first batch runs alone; the rest queue behind it
        rest = await asyncio.gather(*(batcher.submit(i) for i in range(1, 30)))
        return [await first, *rest]

    assert asyncio.run(main()) == list(range(30))
    assert peak == 1 and sizes == [1, 29]
