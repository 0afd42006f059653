"""The emoscope web app: a versioned JSON API (photos, live WebSocket stream, mood log) and the page that uses it.

``create_app(settings)`` builds a FastAPI app; ``emoscope serve`` runs it with uvicorn. Inference runs off the
event loop in one worker thread, which batches concurrent requests into one ``predict_arrays`` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import APIRouter, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..annotate import draw_faces
from ..labels import EMOTIONS
from ..mood import BUCKETS, MoodError, MoodRow, MoodStore, parse_time
from . import media
from .guards import WS_PROTOCOL, BodyTooLarge, Guard, KeyedBuckets, TokenBucket, error_body, is_loopback
from .stream import StreamOptions, StreamState

STATIC_DIR = Path(__file__).parent / "static"
API = "/api/v1"
MULTIPART_OVERHEAD = 64 * 1024
_TOKEN_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class SettingsError(ValueError):
    """Settings that would make an unsafe or unusable server (e.g. a public bind without a token)."""


@dataclass
class ServerSettings:
    """Everything ``emoscope serve`` can set; the defaults are the safe, local ones."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # required when host is not loopback
    db: str | None = None  # SQLite path or database URL; None: the user's data folder
    mood_log: bool = True  # False: never write mood rows (captures still need smile mode)
    retention_days: float = 365.0
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    analyze_max_side: int = 1920  # photos are analysed at most this large; boxes are mapped back
    analyze_rate: float | None = None  # photo requests per second per client (None: no cap)
    analyze_burst: int = 20
    max_pending: int = 64  # photo requests queued for inference before 503
    ws_max_frame_bytes: int = 1024 * 1024
    ws_max_frame_pixels: int = 1920 * 1080
    ws_max_fps: float = 15.0
    ws_max_connections: int = 16
    sample_interval: float = 1.0  # seconds between mood rows of one live track
    smile_frames: int = 10
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] | None = None  # None: loopback names when bound to loopback, else any
    weights: str | None = None
    detector: str = "auto"
    backend: str = "auto"
    tta: str = "none"
    max_batch: int = 8

    @property
    def local(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> None:
        """Refuse unsafe or impossible combinations with a message that says what to do."""
        if self.token is not None:
            if len(self.token) < 16 or not set(self.token) <= _TOKEN_CHARS:
                raise SettingsError(
                    "the token must be at least 16 characters of A-Z a-z 0-9 - . _ ~ (use --token auto to generate one)"
                )
        elif not self.local:
            raise SettingsError(
                f"binding to {self.host} exposes the API beyond this computer: give a token with --token "
                "(or --token auto, or the EMOSCOPE_TOKEN environment variable)"
            )
        for name in ("max_upload_bytes", "max_pixels", "ws_max_frame_bytes", "ws_max_frame_pixels", "max_pending"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.ws_max_fps <= 0 or (self.analyze_rate is not None and self.analyze_rate <= 0):
            raise SettingsError("rates must be positive")

    def effective_hosts(self) -> list[str] | None:
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        if self.local:
            return ["127.0.0.1", "localhost", "::1", self.host]
        return None


# ------------------------------------------------------------------------------------------- schemas


class FaceOut(BaseModel):
    box: list[int] = Field(description="x, y, width, height in pixels of the uploaded image")
    score: float = Field(description="face detector confidence")
    label: str = Field(description="most likely emotion")
    probs: dict[str, float] = Field(description="emotion -> probability (sums to 1)")


class AnnotatedImage(BaseModel):
    mime: str
    width: int
    height: int
    data: str = Field(description="base64 image bytes")


class AnalyzeOut(BaseModel):
    image: dict[str, Any] = Field(description="width, height and detected type of the upload")
    classes: list[str]
    faces: list[FaceOut]
    elapsed_ms: float
    logged: int = Field(description="mood rows written (and committed) for this photo")
    annotated: AnnotatedImage | None = None


class MoodBucket(BaseModel):
    start: str = Field(description="bucket start, ISO 8601 UTC")
    t: float = Field(description="bucket start, Unix seconds")
    n: int
    mean: dict[str, float]
    counts: dict[str, int]
    dominant: str
    happy_share: float = Field(description="fraction of rows whose top label is happy")


class MoodOut(BaseModel):
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    bucket: str
    tz_offset: int
    classes: list[str]
    total: int
    buckets: list[MoodBucket]


class ErrorOut(BaseModel):
    error: dict[str, Any]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    names = {400: "Bad request", 401: "Missing or bad token", 404: "Not found", 413: "Too large",
             415: "Not an accepted image type", 422: "Invalid input", 429: "Rate limit", 503: "Busy"}  # fmt: skip
    return {c: {"model": ErrorOut, "description": names.get(c, "Error")} for c in codes}


# Query parameters shared by the mood routes (module level: FastAPI resolves annotations by name).
Source = Annotated[str | None, Query(pattern="^[a-z]{1,16}$", description="only rows from this source")]
From = Annotated[str | None, Query(alias="from", description="ISO 8601 date/time or Unix seconds")]
To = Annotated[str | None, Query(alias="to", description="exclusive end; default now")]
TzOffset = Annotated[int, Query(ge=-960, le=960, description="minutes east of UTC for bucket edges")]
CaptureLimit = Annotated[int, Query(ge=1, le=200)]


class ApiError(Exception):
    """Raised by routes; turned into the JSON error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra


# ------------------------------------------------------------------------------------------ inference


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


def _face_json(face: Any, scale: float) -> dict[str, Any]:
    d = face.to_dict()
    d.pop("landmarks", None)
    if scale != 1.0:
        d["box"] = [round(v / scale) for v in d["box"]]
    return d


def _client_key(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "?"


# ---------------------------------------------------------------------------------------------- app


def create_app(
    settings: ServerSettings | None = None,
    recognizer: Any = None,
    store: MoodStore | None = None,
) -> FastAPI:
    """Build the app. ``recognizer`` and ``store`` are created at startup from ``settings`` unless given."""
    s = settings or ServerSettings()
    s.check()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = app.state.store is None
        if own_store:
            app.state.store = await run_in_threadpool(MoodStore, s.db, s.retention_days)
        if app.state.inference.recognizer is None:
            from ..recognizer import Recognizer

            app.state.inference.recognizer = await run_in_threadpool(
                lambda: Recognizer(weights=s.weights, detector=s.detector, backend=s.backend, tta=s.tta)
            )
        pruner = asyncio.get_running_loop().create_task(_prune_forever(app))
        try:
            yield
        finally:
            pruner.cancel()
            await app.state.inference.close()
            if own_store:
                app.state.store.close()

    async def _prune_forever(app: FastAPI) -> None:
        while True:
            with contextlib.suppress(Exception):
                await run_in_threadpool(app.state.store.prune)
            await asyncio.sleep(6 * 3600)

    app = FastAPI(
        title="emoscope",
        version=__version__,
        summary="Facial emotion recognition: photos, live video and a mood log.",
        description=(
            "All API routes need `Authorization: Bearer <token>` when the server was started with a token "
            '(always, when it listens beyond localhost). Errors are `{"error": {status, code, message}}`.'
        ),
        lifespan=lifespan,
        openapi_url=f"{API}/openapi.json",
        docs_url=None,  # served below, from local files when swagger-ui-bundle is installed
        redoc_url=None,
    )
    app.state.settings = s
    app.state.store = store
    app.state.inference = Inference(recognizer, s.max_batch)
    app.state.started = time.time()
    app.state.streams = 0
    app.state.photo_buckets = KeyedBuckets(s.analyze_rate, s.analyze_burst) if s.analyze_rate else None

    # ---------------------------------------------------------------- errors
    def _json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
        return JSONResponse(error_body(status, code, message, **extra), status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json_error(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(media.MediaError)
    async def _media_error(_: Request, exc: media.MediaError) -> JSONResponse:
        return _json_error(exc.status, exc.code, exc.message)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return _json_error(413, "too_large", f"request body over the {exc.limit}-byte limit")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json_error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _json_error(500, "internal_error", f"unexpected server error ({type(exc).__name__})")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return _json_error(422, "invalid_input", "; ".join(problems) or "invalid input")

    router = APIRouter(prefix=API)

    # ---------------------------------------------------------------- health
    @router.get("/health", summary="Server, model and mood-log status", responses=_errors(401))
    async def health(request: Request) -> dict[str, Any]:
        st: MoodStore = request.app.state.store
        rec = request.app.state.inference.recognizer
        rows = await run_in_threadpool(st.count)
        return {
            "status": "ok",
            "version": __version__,
            "uptime_s": round(time.time() - request.app.state.started, 1),
            "model": {
                "classes": list(getattr(rec, "classes", EMOTIONS)),
                "backend": getattr(rec, "backend_name", None),
                "detector": getattr(getattr(rec, "detector", None), "name", None),
            },
            "mood": {
                "logging": s.mood_log,
                "db": st.safe_url,
                "schema_version": await run_in_threadpool(st.schema_version),
                "rows": rows,
                "retention_days": s.retention_days,
            },
            "limits": {
                "max_upload_bytes": s.max_upload_bytes,
                "max_pixels": s.max_pixels,
                "ws_max_frame_bytes": s.ws_max_frame_bytes,
                "ws_max_frame_pixels": s.ws_max_frame_pixels,
                "ws_max_fps": s.ws_max_fps,
                "analyze_rate": s.analyze_rate,
            },
            "auth": {"token_required": s.token is not None},
            "streams": request.app.state.streams,
        }

    # ---------------------------------------------------------------- photos
    async def _read_upload(request: Request) -> bytes:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        cap = s.max_upload_bytes
        if ctype == "multipart/form-data":
            try:
                form = await request.form(max_files=1, max_fields=8)
            except BodyTooLarge:
                raise
            except Exception as exc:  # malformed multipart, too many parts
                raise ApiError(422, "bad_form", f"could not read the form data ({exc})") from None
            try:
                upload = form.get("file") or next((v for v in form.values() if hasattr(v, "read")), None)
                if upload is None or not hasattr(upload, "read"):
                    raise ApiError(422, "missing_file", "send the image as a form field named 'file'")
                data = await upload.read(cap + 1)
            finally:
                await form.close()
        else:
            data = bytearray()
            async for chunk in request.stream():
                data += chunk
                if len(data) > cap:
                    break
            data = bytes(data)
        if len(data) > cap:
            raise ApiError(413, "too_large", f"image over the {cap}-byte limit", limit=cap)
        if not data:
            raise ApiError(422, "empty", "the upload is empty")
        return data

    analyze_body = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }

    @router.post(
        "/analyze",
        summary="Faces and emotions in one photo",
        description=(
            "Send a JPEG, PNG, WebP, GIF or BMP (type decided by its bytes) as multipart field `file` or as "
            "the raw body. `annotate=true` adds the picture with boxes and bars, base64-encoded. "
            "`log=true` writes one mood row per face."
        ),
        response_model=AnalyzeOut,
        response_model_exclude_none=True,
        openapi_extra={"requestBody": analyze_body},
        responses=_errors(401, 413, 415, 422, 429, 503),
    )
    async def analyze(
        request: Request,
        annotate: bool = False,
        format: Literal["jpeg", "png"] = "jpeg",  # noqa: A002 - the query parameter's public name
        log: bool = False,
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        buckets: KeyedBuckets | None = request.app.state.photo_buckets
        if buckets is not None:
            wait = buckets.take(_client_key(request))
            if wait:
                retry = {"Retry-After": str(max(1, math.ceil(wait)))}
                msg = f"more than {s.analyze_rate:g} photos per second"
                raise ApiError(429, "rate_limited", msg, headers=retry, retry_after=round(wait, 3))
        inference: Inference = request.app.state.inference
        if inference.pending >= s.max_pending:
            raise ApiError(503, "busy", "too many photos waiting for analysis; retry shortly",
                           headers={"Retry-After": "1"})  # fmt: skip
        data = await _read_upload(request)
        bgr, mime = await run_in_threadpool(media.decode, data, s.max_pixels)
        work, scale = media.fit(bgr, s.analyze_max_side)
        try:
            faces = await inference.predict(work)
        except Exception as exc:
            raise ApiError(500, "inference_failed", f"analysis failed: {exc}") from exc
        out: dict[str, Any] = {
            "image": {"width": int(bgr.shape[1]), "height": int(bgr.shape[0]), "type": mime},
            "classes": list(getattr(inference.recognizer, "classes", EMOTIONS)),
            "faces": [_face_json(f, scale) for f in faces],
            "logged": 0,
        }
        if log and s.mood_log and faces:
            now = time.time()
            st: MoodStore = request.app.state.store
            ids = await run_in_threadpool(st.add, [_photo_row(f, now) for f in faces])
            out["logged"] = len(ids)
        if annotate:
            out["annotated"] = await run_in_threadpool(lambda: media.encode_b64(draw_faces(work, faces), format))
        out["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        return out

    def _photo_row(face: Any, now: float) -> MoodRow:
        return MoodRow(now, "photo", face.probs)

    # ---------------------------------------------------------------- mood
    def _range(start: str | None, end: str | None, default_span: timedelta) -> tuple[datetime, datetime]:
        try:
            t_end = parse_time(end) or datetime.now(UTC)
            t_start = parse_time(start) or (t_end - default_span)
        except MoodError as exc:
            raise ApiError(422, "bad_time", str(exc)) from None
        if t_start >= t_end:
            raise ApiError(422, "bad_range", "'from' must be before 'to'")
        return t_start, t_end

    @router.get("/mood", summary="Mood aggregates per minute, hour or day", response_model=MoodOut,
                response_model_by_alias=True, responses=_errors(401, 422))  # fmt: skip
    async def mood(
        request: Request,
        start: From = None,
        end: To = None,
        bucket: Literal["minute", "hour", "day"] = "hour",
        tz_offset: TzOffset = 0,
        source: Source = None,
    ) -> dict[str, Any]:
        span = {"minute": timedelta(hours=1), "hour": timedelta(days=1), "day": timedelta(days=7)}[bucket]
        t_start, t_end = _range(start, end, span)
        n_buckets = (t_end - t_start).total_seconds() * 1000 / BUCKETS[bucket]
        if n_buckets > 20_000:
            raise ApiError(422, "range_too_long", f"that range has {n_buckets:.0f} {bucket}s; ask for 20000 at most")
        st: MoodStore = request.app.state.store
        rows = await run_in_threadpool(st.aggregate, t_start, t_end, bucket, tz_offset, source)
        return {
            "from": t_start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "to": t_end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "bucket": bucket,
            "tz_offset": tz_offset,
            "classes": list(EMOTIONS),
            "total": sum(r["n"] for r in rows),
            "buckets": rows,
        }

    @router.get(
        "/mood.csv",
        summary="Export mood rows as CSV",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}}, **_errors(401, 422)},
    )
    async def mood_csv(request: Request, start: From = None, end: To = None, source: Source = None):
        try:
            t_start, t_end = parse_time(start), parse_time(end)
        except MoodError as exc:
            raise ApiError(422, "bad_time", str(exc)) from None
        st: MoodStore = request.app.state.store
        name = f"emoscope-mood-{datetime.now():%Y%m%d-%H%M}.csv"
        return StreamingResponse(
            st.csv_lines(t_start, t_end, source),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # ---------------------------------------------------------------- captures
    @router.get("/captures", summary="Smile captures, newest first (no image bytes)", responses=_errors(401))
    async def list_captures(request: Request, limit: CaptureLimit = 48) -> dict[str, Any]:
        items = await run_in_threadpool(request.app.state.store.list_captures, limit)
        for c in items:
            c["url"] = f"{API}/captures/{c['id']}"
        return {"captures": items}

    @router.get("/captures/{capture_id}", summary="One smile capture's image", response_class=Response,
                responses={200: {"content": {"image/jpeg": {}}}, **_errors(401, 404)})  # fmt: skip
    async def get_capture(request: Request, capture_id: int) -> Response:
        got = await run_in_threadpool(request.app.state.store.get_capture, capture_id)
        if got is None:
            raise ApiError(404, "not_found", f"no capture {capture_id}")
        data, mime = got
        return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=3600"})

    @router.delete("/captures/{capture_id}", summary="Delete a smile capture", status_code=204,
                   response_class=Response, responses=_errors(401, 404))  # fmt: skip
    async def delete_capture(request: Request, capture_id: int) -> Response:
        if not await run_in_threadpool(request.app.state.store.delete_capture, capture_id):
            raise ApiError(404, "not_found", f"no capture {capture_id}")
        return Response(status_code=204)

    # ---------------------------------------------------------------- live stream
    @router.websocket("/stream")
    async def stream(ws: WebSocket) -> None:
        """Binary messages are JPEG/PNG/WebP frames; text messages are JSON config. One JSON answer per frame."""
        origin = ws.headers.get("origin")
        if origin and not _origin_ok(origin, ws.headers.get("host", "")):
            await _deny(ws, 403, "bad_origin", f"WebSocket from origin {origin} not allowed (see --cors-origin)")
            return
        if ws.app.state.streams >= s.ws_max_connections:
            await _deny(ws, 503, "too_many_streams", f"at most {s.ws_max_connections} live streams at once")
            return
        ws.app.state.streams += 1
        try:
            await _stream(ws)
        finally:
            ws.app.state.streams -= 1

    def _origin_ok(origin: str, host: str) -> bool:
        if origin in s.cors_origins or "*" in s.cors_origins:
            return True
        return origin.split("://", 1)[-1].lower() == host.lower()

    async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(JSONResponse(error_body(status, code, message), status_code=status))
        else:
            await ws.close(code=1008, reason=code)

    async def _stream(ws: WebSocket) -> None:
        offered = ws.scope.get("subprotocols", [])
        await ws.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
        app_state = ws.app.state
        inference: Inference = app_state.inference
        st: MoodStore = app_state.store
        session = uuid.uuid4().hex[:12]
        state = StreamState(session, StreamOptions(log=s.mood_log, smile_frames=s.smile_frames), s.sample_interval)
        bucket = TokenBucket(s.ws_max_fps, max(1.0, s.ws_max_fps))
        limits = {"max_frame_bytes": s.ws_max_frame_bytes, "max_frame_pixels": s.ws_max_frame_pixels,
                  "max_fps": s.ws_max_fps}  # fmt: skip
        classes = list(getattr(inference.recognizer, "classes", EMOTIONS))
        await ws.send_json({"type": "hello", "session": session, "classes": classes, "limits": limits,
                            "options": asdict(state.options), "log_allowed": s.mood_log})  # fmt: skip
        seq = 0
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                text, data = msg.get("text"), msg.get("bytes")
                if text is not None:
                    if len(text) > 4096:
                        await _ws_error(ws, 413, "too_large", "control messages are at most 4096 characters")
                        continue
                    try:
                        cfg = json.loads(text)
                        if not isinstance(cfg, dict) or cfg.get("type") != "config":
                            raise ValueError('send {"type": "config", ...} as text; frames as binary')
                        state.options.update(cfg, s.mood_log)
                    except (ValueError, TypeError) as exc:
                        await _ws_error(ws, 422, "bad_message", str(exc))
                        continue
                    await ws.send_json({"type": "config", "options": asdict(state.options)})
                    continue
                if data is None:
                    continue
                seq += 1
                if len(data) > s.ws_max_frame_bytes:
                    msg = f"frame of {len(data)} bytes; the limit is {s.ws_max_frame_bytes}"
                    await _ws_error(ws, 413, "frame_too_large", msg, seq=seq)
                    await ws.close(code=1009, reason="frame too large")
                    return
                wait = bucket.take()
                if wait:
                    await _ws_error(ws, 429, "rate_limited", f"more than {s.ws_max_fps:g} frames per second; "
                                    "frame dropped", seq=seq, retry_after=round(wait, 3))  # fmt: skip
                    continue
                t_recv = time.perf_counter()
                try:
                    bgr, _ = await run_in_threadpool(
                        media.decode, data, s.ws_max_frame_pixels, ("image/jpeg", "image/png", "image/webp"), False
                    )
                except media.MediaError as exc:
                    await _ws_error(ws, exc.status, exc.code, exc.message, seq=seq)
                    continue
                try:
                    faces = await inference.predict(bgr)
                except Exception as exc:
                    await _ws_error(ws, 500, "inference_failed", f"analysis failed: {exc}", seq=seq)
                    continue
                tracked, rows, capture, progress = state.observe(faces, time.monotonic(), time.time())
                logged = len(await run_in_threadpool(st.add, rows)) if rows else 0
                h, w = bgr.shape[:2]
                await ws.send_json({
                    "type": "faces", "seq": seq, "width": int(w), "height": int(h),
                    "faces": [tf.to_dict() for tf in tracked],
                    "elapsed_ms": round((time.perf_counter() - t_recv) * 1000, 1),
                    "logged": logged,
                    "smile": {"on": state.options.smile_capture, "progress": round(progress, 3),
                              "frames": state.options.smile_frames},
                })  # fmt: skip
                if capture:
                    cid = await run_in_threadpool(
                        st.add_capture, data, w, h, len(tracked), session=session, mime=_mime(data)
                    )
                    await ws.send_json({"type": "capture", "capture": {"id": cid, "url": f"{API}/captures/{cid}",
                                        "n_faces": len(tracked), "width": int(w), "height": int(h)}})  # fmt: skip
        except WebSocketDisconnect:
            return

    def _mime(data: bytes) -> str:
        return media.sniff(data) or "application/octet-stream"

    async def _ws_error(ws: WebSocket, status: int, code: str, message: str, **extra: Any) -> None:
        await ws.send_json({"type": "error", **error_body(status, code, message, **extra)})

    app.include_router(router)

    # ---------------------------------------------------------------- page
    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> FileResponse:
        host = request.headers.get("host", "")
        csp = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"media-src 'self' blob: mediastream:; connect-src 'self' ws://{host} wss://{host}; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        )
        return FileResponse(
            STATIC_DIR / "index.html",
            headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer",
                     "X-Content-Type-Options": "nosniff", "Permissions-Policy": "camera=(self), microphone=()"},
        )  # fmt: skip

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ---------------------------------------------------------------- API docs
    # FastAPI's docs page loads Swagger UI from a CDN, so offline it stays blank; the fastapi-offline
    # package (in the web extra) ships the same files, served here.
    swagger_dir = _swagger_ui_dir()
    app.state.docs_offline = swagger_dir is not None  # `emoscope serve` says so when it is not
    if swagger_dir is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger_dir), name="docs-assets")

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        if swagger_dir is None:
            return get_swagger_ui_html(openapi_url=f"{API}/openapi.json", title="emoscope API")
        return get_swagger_ui_html(openapi_url=f"{API}/openapi.json", title="emoscope API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png")

    app.add_middleware(
        Guard,
        token=s.token,
        max_body=s.max_upload_bytes + MULTIPART_OVERHEAD,
        allowed_hosts=s.effective_hosts(),
        open_paths={f"{API}/openapi.json", "/api/docs"},
    )
    if s.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=s.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Emoscope-Token"],
            max_age=600,
        )
    return app


def _swagger_ui_dir() -> Path | None:
    """Swagger UI 5's files as the ``fastapi-offline`` package ships them, or None when it is not installed.

    Only its ``static`` folder is used (found without importing the package). swagger-ui-bundle was tried
    first: its Swagger UI 4 refuses FastAPI's OpenAPI 3.1 schema."""
    import importlib.util

    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def generate_token() -> str:
    """A fresh random access token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)
