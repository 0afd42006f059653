"""The recognizer behind the server: one worker thread that batches concurrent requests."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio
import numpy as np


class Inference:
    """Runs the recognizer in one worker thread, batching requests that arrive while it is busy."""

    def __init__(self, recognizer: Any, max_batch: int = 8) -> None:
        self.recognizer = recognizer
        self.max_batch = max(1, max_batch)
        self.limiter = anyio.CapacityLimiter(1)
        self.pending = 0
        self._queue: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def _run(self, images: list[np.ndarray]) -> list[list[Any]]:
        rec = self.recognizer
        if hasattr(rec, "predict_arrays"):
            return rec.predict_arrays(images)
        return [rec.predict(im) for im in images]

    async def predict(self, image: np.ndarray) -> list[Any]:
        """The faces in one BGR image, computed in a batch with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._loop, self._queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._worker(self._queue))
        fut: asyncio.Future = loop.create_future()
        self.pending += 1
        try:
            await self._queue.put((image, fut))
            return await fut
        finally:
            self.pending -= 1

    async def _worker(self, queue: asyncio.Queue) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                results = await anyio.to_thread.run_sync(self._run, [b[0] for b in batch], limiter=self.limiter)
            except Exception as exc:  # one bad batch must not kill the worker
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
