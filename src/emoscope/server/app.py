"""The emoscope web app: a versioned JSON API (photos, live WebSocket stream, mood log) and the page that uses it.

``create_app(settings)`` builds a FastAPI app from the routers in ``routes/``; ``emoscope serve`` runs it with
uvicorn. Decoding runs in bounded thread lanes (:mod:`.decoding`), inference off the event loop in two worker
threads (:mod:`.inference`), each batching concurrent requests into one ``predict_arrays`` call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..mood import MoodStore
from .decoding import Decoder
from .errors import CatchAll, install_error_handlers
from .guards import Guard, KeyedBuckets
from .inference import Inference
from .routes import include_all
from .settings import ServerSettings, SettingsError, generate_token
from .state import API, ServerState

__all__ = ["API", "ServerSettings", "SettingsError", "create_app", "generate_token"]

MULTIPART_OVERHEAD = 64 * 1024
_DESCRIPTION = (
    "All API routes need `Authorization: Bearer <token>` when the server was started with a token "
    "(always, when it listens beyond localhost). Requests from other web sites are refused (see `--cors-origin`). "
    'Errors are `{"error": {status, code, message}}`.'
)


def create_app(
    settings: ServerSettings | None = None, recognizer: Any = None, store: MoodStore | None = None
) -> FastAPI:
    """Build the app. ``recognizer`` and ``store`` are created at startup from ``settings`` unless given."""
    s = settings or ServerSettings()
    s.check()
    app = FastAPI(title="emoscope", version=__version__, summary="Facial emotion recognition: photos, live video "
                  "and a mood log.", description=_DESCRIPTION, lifespan=_lifespan, openapi_url=f"{API}/openapi.json",
                  docs_url=None, redoc_url=None)  # fmt: skip
    buckets = KeyedBuckets(s.analyze_rate, s.analyze_burst) if s.analyze_rate else None
    decoder = Decoder(s.decode_budget_bytes, s.decode_workers)
    app.state.emoscope = ServerState(s, Inference(recognizer, s.max_batch), decoder, store, buckets)
    install_error_handlers(app)
    include_all(app)
    app.add_middleware(CatchAll)  # innermost: answers unexpected errors without dropping the connection
    app.add_middleware(Guard, token=s.token, max_body=s.max_upload_bytes + MULTIPART_OVERHEAD,
                       allowed_hosts=s.effective_hosts(), open_paths={f"{API}/openapi.json", "/api/docs"},
                       allowed_origins=s.cors_origins)  # fmt: skip
    if s.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        headers = ["Authorization", "Content-Type", "X-Emoscope-Token"]
        app.add_middleware(CORSMiddleware, allow_origins=s.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=headers, max_age=600)  # fmt: skip
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the store and load the model (unless given), prune old rows every 6 hours, close on shutdown."""
    st: ServerState = app.state.emoscope
    s = st.settings
    own_store = st.store is None
    if own_store:
        st.store = await run_in_threadpool(MoodStore, s.db, s.retention_days)
    if st.inference.recognizer is None:
        from ..recognizer import Recognizer

        st.inference.recognizer = await run_in_threadpool(
            lambda: one_thread_each(Recognizer(weights=s.weights, detector=s.detector, backend=s.backend, tta=s.tta,
                                               threads=1, balance=s.balance))
        )  # fmt: skip
    pruner = asyncio.get_running_loop().create_task(_prune_forever(st.mood))
    try:
        yield
    finally:
        pruner.cancel()
        await st.inference.close()
        st.decoder.close()
        if own_store:
            st.mood.close()


def one_thread_each(recognizer: Any) -> Any:
    """The recognizer with its BlazeFace detector's networks on one thread each (the calling thread).

    The server runs the recognizer from two worker threads (small and large images). ONNX Runtime's default
    pool (a thread per core, shared by every call of a session, spinning between runs) let one 40 MP
    picture's detection take both cores beside a photo's, and is slower on few shared cores anyway
    (480x360 frame: 12.8 ms on one thread here). On one thread, each call stays in its lane's thread.
    (The classifier is loaded with ``threads=1``.)
    """
    from ..faces import BlazeFaceDetector

    det = getattr(recognizer, "detector", None)
    if isinstance(det, BlazeFaceDetector) and getattr(det, "threads", None) != 1:
        one = BlazeFaceDetector(det.models, min_score=det.min_score, nms_iou=det.nms_iou, runtime=det.runtime,
                                threads=1, tile_side=det.tile_side, max_tiles=det.max_tiles)  # fmt: skip
        one.name = det.name
        recognizer.detector = one
    return recognizer


async def _prune_forever(store: MoodStore) -> None:
    while True:
        with contextlib.suppress(Exception):
            await run_in_threadpool(store.prune)
        await asyncio.sleep(6 * 3600)
