"""Bounded image decoding for the server: a shared byte budget and a few threads, so uploads cannot pile up.

Every photo and live frame is decoded here. Its header is read first (cheap) and the bytes its decoding
will hold are reserved from one budget shared by all requests; decoding then runs in a small thread pool.
Large images (over :data:`SMALL_BYTES`) use their own lane, limited to three quarters of the budget and
``workers`` threads of their own (:mod:`.threads`), so a burst of 40-megapixel uploads waits its turn while
ordinary photos and frames pass beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import numpy as np

from . import media
from .threads import HEAVY_NICE, WorkerThreads

#: Decodes that hold at most this many bytes are "small" (a 12-megapixel JPEG decoded at 1/2 size is).
SMALL_BYTES = 64 * 1024 * 1024
SMALL_WORKERS = 4


@dataclass(frozen=True)
class Decoded:
    """A decoded upload, already shrunk for analysis."""

    image: np.ndarray  # BGR uint8, longer side at most the requested max_side
    scale: float  # image size / original size (divide boxes found on ``image`` by it)
    width: int  # original size, after EXIF rotation
    height: int
    mime: str


class ByteBudget:
    """A weighted semaphore over bytes: ``hold(n, limit)`` waits until ``n`` more fit under ``limit``.

    A request larger than the limit still runs, but only when nothing else holds the budget.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self.peak = 0
        self._cond: asyncio.Condition | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._cond is None or self._loop is not loop:
            self._cond, self._loop = asyncio.Condition(), loop
        return self._cond

    @contextlib.asynccontextmanager
    async def hold(self, n: int, limit: int | None = None) -> AsyncIterator[None]:
        limit = self.total if limit is None else min(limit, self.total)
        n = min(n, limit)
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.used == 0 or self.used + n <= limit)
            self.used += n
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            async with cond:
                self.used -= n
                cond.notify_all()


class Decoder:
    """Decodes untrusted image bytes within a byte budget and a bounded number of threads."""

    def __init__(self, budget_bytes: int, workers: int) -> None:
        self.budget = ByteBudget(budget_bytes)
        self.workers = max(1, workers)
        self.heavy = WorkerThreads(self.workers, HEAVY_NICE, "emoscope-decode-large")
        self._limiter: anyio.CapacityLimiter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _small_lane(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._loop is not loop:
            self._limiter, self._loop = anyio.CapacityLimiter(SMALL_WORKERS), loop
        return self._limiter

    async def probe(
        self,
        data: bytes,
        *,
        max_pixels: int,
        max_aspect: float = math.inf,
        accept: tuple[str, ...] = media.ACCEPTED_TYPES,
    ) -> media.ImageInfo:
        """The header checks alone (type, pixels, aspect; nothing decoded): :class:`media.MediaError` when refused."""
        return await anyio.to_thread.run_sync(
            media.probe, data, max_pixels, max_aspect, accept, limiter=self._small_lane()
        )

    async def decode(
        self,
        data: bytes,
        *,
        max_pixels: int,
        max_side: int,
        max_aspect: float = math.inf,
        accept: tuple[str, ...] = media.ACCEPTED_TYPES,
        info: media.ImageInfo | None = None,
    ) -> Decoded:
        """Header checks (type, pixels, aspect), then a budgeted decode (EXIF rotation applied) shrunk to ``max_side``.

        ``info``: the header already checked by :meth:`probe` (then it is not read again).
        Raises :class:`media.MediaError` (415, 413, 422) for refused or corrupt images.
        """
        small = self._small_lane()
        if info is None:
            info = await self.probe(data, max_pixels=max_pixels, max_aspect=max_aspect, accept=accept)
        cost = info.decode_bytes(max_side)
        is_big = cost > SMALL_BYTES
        limit = self.budget.total * 3 // 4 if is_big else self.budget.total
        async with self.budget.hold(cost, limit):
            if is_big:
                image, scale = await self.heavy.run(media.decode_fit, data, info, max_side)
            else:
                image, scale = await anyio.to_thread.run_sync(media.decode_fit, data, info, max_side, limiter=small)
        w, h = info.size
        if (w > h and image.shape[0] > image.shape[1]) or (h > w and image.shape[1] > image.shape[0]):
            w, h = h, w  # turned by EXIF the header check does not read (a PNG's eXIf chunk after its pixels)
        return Decoded(image, scale, w, h, info.mime)

    def close(self) -> None:
        """Stop the large lane's threads (they start again on the next large decode)."""
        self.heavy.close()
