"""Micro-batching for a fleet's devices: concurrent asyncio callers submit one item each and a
single call serves them all, so per-call costs (a Serve round trip, a torch forward) are
paid per batch instead of per device.

Contract (as ``@serve.batch``): ``fn`` is async, takes a list, returns a list of the same
length and order. A batch fires when ``max_items`` wait or ``window_s`` after its first item,
whichever comes first. If ``fn`` raises, every caller of that batch gets the exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class MicroBatcher(Generic[In, Out]):
    """Collect items from concurrent callers and serve them with one ``fn`` call.

    Args:
        fn (Callable[[list[In]], Awaitable[list[Out]]]): serves a batch.
        max_items (int): batch size that fires at once.
        window_s (float): longest a lone item waits for company.
        max_concurrent (int | None): batches running at once; None: no limit. CPU-bound
            work on one core wants 1 (the next batch keeps filling meanwhile).
    """

    def __init__(
        self,
        fn: Callable[[list[In]], Awaitable[list[Out]]],
        max_items: int,
        window_s: float,
        max_concurrent: int | None = None,
    ):
        if max_items < 1 or window_s < 0 or (max_concurrent is not None and max_concurrent < 1):
            raise ValueError(
                f"max_items and max_concurrent must be >= 1 and window_s >= 0, got "
                f"{max_items}, {max_concurrent}, {window_s}"
            )
        self.fn, self.max_items, self.window_s = fn, max_items, window_s
        self.max_concurrent = max_concurrent
        self._waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task] = set()  # strong refs: the loop keeps only weak ones

    async def submit(self, item: In) -> Out:
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._waiting) >= self.max_items:
            self._fire()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_s, self._fire)
        return await future

    def _fire(self) -> None:
        """Start batches while items wait and capacity allows; at capacity, the next
        finishing batch fires again with whatever has gathered by then."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting and (
            self.max_concurrent is None or len(self._running) < self.max_concurrent
        ):
            batch, self._waiting = self._waiting[: self.max_items], self._waiting[self.max_items :]
            task = asyncio.create_task(self._serve(batch))
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._running.discard(task)
        if self._waiting:
            self._fire()

    async def _serve(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self.fn([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"batch function returned {len(results)} results for {len(batch)} items"
                )
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
