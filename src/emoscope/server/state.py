"""What the routes share: settings, the mood store, the inference worker, counters (one typed object)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from .decoding import Decoder
from .guards import KeyedBuckets
from .inference import Inference
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..mood import MoodStore

API = "/api/v1"


@dataclass
class ServerState:
    """Per-app state, kept on ``app.state.emoscope``; ``store`` is set at startup unless given."""

    settings: ServerSettings
    inference: Inference
    decoder: Decoder
    store: MoodStore | None = None
    photo_buckets: KeyedBuckets | None = None
    started: float = field(default_factory=time.time)
    streams: int = 0  # open WebSocket streams
    photos: int = 0  # photo requests admitted and not yet answered (reading, decoding or analysing)
    frames: int = 0  # live frames being decoded or analysed (all streams)
    _frame_slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = field(default=None, repr=False)

    def frame_slots(self) -> asyncio.Semaphore:
        """The places for live frames in decoding and analysis (``ws_frames_in_flight``, all streams together).

        A frame waits for one, undecoded, before it is decoded: however many streams send, at most that many
        frames compete with photos for the decode threads, the small-image worker and the CPU."""
        loop = asyncio.get_running_loop()
        if self._frame_slots is None or self._frame_slots[0] is not loop:
            self._frame_slots = (loop, asyncio.Semaphore(self.settings.ws_frames_in_flight))
        return self._frame_slots[1]

    @property
    def mood(self) -> MoodStore:
        assert self.store is not None, "the mood store is opened at startup"
        return self.store


def state(conn: HTTPConnection) -> ServerState:
    """The app's :class:`ServerState` from a request or WebSocket."""
    return conn.app.state.emoscope
