"""The recognizer behind the server: two worker threads (small and large images) that batch concurrent requests.

Live frames and ordinary photos go to one worker, pictures larger than a full-HD frame to the other, so a
40-megapixel upload's detection (seconds on a small machine) never makes a live frame or a phone photo wait.
Within a worker, images are served by arrival time plus a delay per megapixel (live frames get a head
start), in small batches of similar size.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from typing import Any

import anyio
import numpy as np

from .threads import HEAVY_NICE, WorkerThreads

#: Images up to this many pixels (a full-HD frame) use the small-image worker; larger ones the other.
SMALL_PIXELS = 1920 * 1080
#: A batch holds images of at most this many times the first one's pixels, and at most this many pixels
#: in all (the first image always goes): detection cost grows with pixels (tiles), and every image in a
#: batch waits for the whole batch. Batching hardly saves time with the models on one thread each (480x360
#: frames: 12.8 ms each alone, 14.3 ms in batches of 8), so batches stay small (a megapixel): a photo waits
#: for at most the batch in progress and its own.
BATCH_PIXEL_RATIO = 4
BATCH_MAX_PIXELS = 1024 * 1024
#: Queue order: arrival time plus this many seconds per megapixel. Small images overtake big ones that
#: arrived up to a few seconds earlier, and a big one is never starved by a steady flow of small ones.
SECONDS_PER_MEGAPIXEL = 1.0
#: Live frames are queued as if they had arrived this many seconds earlier: a stream's frame goes before the
#: photos of the last second (the stream route lets only ``ws_frames_in_flight`` frames into analysis at once,
#: so photos wait for at most that many), and a photo that has waited longer goes first.
LIVE_HEAD_START = 1.0

_Entry = tuple[float, int, np.ndarray, asyncio.Future]


class _Lane:
    """One worker thread's queue: a heap of waiting images and the task that feeds them to the recognizer."""

    def __init__(self, owner: Inference, threads: WorkerThreads | None = None) -> None:
        self.owner = owner
        self.heap: list[_Entry] = []
        self.ready = asyncio.Event()
        self.threads = threads  # None: anyio's worker threads, one at a time
        self.limiter = anyio.CapacityLimiter(1)
        self.task = asyncio.get_running_loop().create_task(self._work())

    async def run(self, images: list[np.ndarray]) -> list[list[Any]]:
        if self.threads is not None:
            return await self.threads.run(self.owner._run, images)
        return await anyio.to_thread.run_sync(self.owner._run, images, limiter=self.limiter)

    def push(self, entry: _Entry) -> None:
        heapq.heappush(self.heap, entry)
        self.ready.set()

    def next_batch(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """The first waiting image and others of similar size, in queue order, within the batch limits."""
        first = heapq.heappop(self.heap)
        size = first[2].shape[0] * first[2].shape[1]
        lo, hi = size / BATCH_PIXEL_RATIO, size * BATCH_PIXEL_RATIO
        pick, total = [], size
        for e in sorted(self.heap):
            n = e[2].shape[0] * e[2].shape[1]
            if len(pick) + 1 >= self.owner.max_batch or total + n > BATCH_MAX_PIXELS:
                break
            if lo <= n <= hi:
                pick.append(e)
                total += n
        if pick:
            chosen = {id(e) for e in pick}
            self.heap = [e for e in self.heap if id(e) not in chosen]
            heapq.heapify(self.heap)
        return [(image, fut) for _, _, image, fut in [first, *pick] if not fut.done()]

    async def _work(self) -> None:
        while True:
            await self.ready.wait()
            if not self.heap:
                self.ready.clear()
                continue
            batch = self.next_batch()
            if not batch:
                continue
            try:
                images = [b[0] for b in batch]
                results = await self.run(images)
            except Exception as exc:  # one bad batch must not kill the worker
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)


class Inference:
    """Runs the recognizer off the event loop: two worker threads (small, large images), batching waiters.

    The recognizer is called from both threads at once; its models only read their weights while predicting.
    The large images' thread is its own (:class:`.threads.WorkerThreads`).
    """

    def __init__(self, recognizer: Any, max_batch: int = 8) -> None:
        self.recognizer = recognizer
        self.max_batch = max(1, max_batch)
        self.pending = 0
        self._order = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lanes: tuple[_Lane, _Lane] | None = None
        self.heavy = WorkerThreads(1, HEAVY_NICE, "emoscope-infer-large")

    def _run(self, images: list[np.ndarray]) -> list[list[Any]]:
        rec = self.recognizer
        if hasattr(rec, "predict_arrays"):
            return rec.predict_arrays(images)
        return [rec.predict(im) for im in images]

    async def predict(self, image: np.ndarray, live: bool = False) -> list[Any]:
        """The faces in one BGR image, computed in a batch with whatever else of its size is waiting.

        ``live``: a stream's frame, queued with :data:`LIVE_HEAD_START` (a late frame is no use to a live view).
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._lanes is None or any(lane.task.done() for lane in self._lanes):
            self._loop, self._lanes = loop, (_Lane(self), _Lane(self, self.heavy))
        pixels = int(image.shape[0]) * int(image.shape[1])
        lane = self._lanes[0] if pixels <= SMALL_PIXELS else self._lanes[1]
        fut: asyncio.Future = loop.create_future()
        self.pending += 1
        try:
            due = loop.time() + pixels * SECONDS_PER_MEGAPIXEL / 1e6 - (LIVE_HEAD_START if live else 0.0)
            lane.push((due, next(self._order), image, fut))
            return await fut
        finally:
            self.pending -= 1

    async def close(self) -> None:
        for lane in self._lanes or ():
            lane.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await lane.task
        self.heavy.close()
