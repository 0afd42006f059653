"""Worker threads of their own for heavy work (40-megapixel decodes and detections), optionally at a lower OS priority.

The heavy lanes run on a :class:`WorkerThreads` pool, never on the threads small requests use, so a photo
never waits for a thread behind a big upload. A pool made with ``nice`` > 0 would also run that much lower
(Linux: ``setpriority`` on the thread itself; lowering cannot be undone without privileges, so such threads
do only their pool's work), but the server does not use that (:data:`HEAVY_NICE` is 0): measured with
``benchmarks/abuse.py --only storm`` on 2 shared cores, heavy threads at nice +10 made the normal photo
*slower* (max 0.6-1.8 s against 0.19-0.22 s at nice 0) and the storm three times longer. In CPython a
low-priority thread that the kernel preempts while it holds the GIL stalls every other thread of the server,
and on a shared machine it also yields to every other program, so the heavy work, and its memory, lasts longer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: How much lower the heavy lanes' threads run: none (see the module doc for the measurement).
HEAVY_NICE = 0


def lower_priority(nice: int) -> bool:
    """Lower the calling thread's OS priority by ``nice`` steps (at most to 19); False where that is not possible.

    Linux only: there a thread id names the thread for ``setpriority``; elsewhere it would name a process.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return False
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + nice))
    except OSError:
        return False
    return True


def thread_nice() -> int | None:
    """The calling thread's nice value (None where it cannot be read: not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return None


class WorkerThreads:
    """A pool of ``workers`` threads running at ``nice`` steps below normal priority; ``await run(fn, ...)``.

    The threads start on first use (so an app that is only built starts none). A caller cancelled while its
    call runs still waits for the call to end before the cancellation goes on: the call holds memory and a
    place in the decode budget until it returns.
    """

    def __init__(self, workers: int, nice: int = 0, name: str = "emoscope") -> None:
        self.workers = max(1, workers)
        self.nice = nice
        self.name = name
        self.lowered = False  # whether the threads' priority could be lowered (set when the first one starts)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _started(self) -> None:
        self.lowered = lower_priority(self.nice)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix=self.name, initializer=self._started
                )
            return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on one of the pool's threads; its result or its exception."""
        fut = asyncio.get_running_loop().run_in_executor(self._executor(), functools.partial(fn, *args))
        cancelled = False
        while True:
            try:
                result = await asyncio.shield(fut)
                break
            except asyncio.CancelledError:
                if fut.done():
                    raise
                cancelled = True  # wait for the thread's call to return, then pass the cancellation on
            except Exception:
                if cancelled:
                    raise asyncio.CancelledError from None
                raise
        if cancelled:
            raise asyncio.CancelledError
        return result

    def close(self) -> None:
        """Stop the threads once their current calls end (queued calls are dropped)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.shutdown(wait=False, cancel_futures=True)
