"""What the routes share: settings, the mood store, the inference worker, counters (one typed object)."""

from __future__ import annotations

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

    @property
    def mood(self) -> MoodStore:
        assert self.store is not None, "the mood store is opened at startup"
        return self.store


def state(conn: HTTPConnection) -> ServerState:
    """The app's :class:`ServerState` from a request or WebSocket."""
    return conn.app.state.emoscope
