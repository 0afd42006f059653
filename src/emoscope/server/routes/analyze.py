"""``POST /analyze``: faces and emotions in one uploaded photo (optionally annotated, optionally logged)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...annotate import draw_faces
from ...labels import EMOTIONS
from ...mood import MoodRow
from .. import media
from ..errors import ApiError
from ..guards import BodyTooLarge
from ..schemas import AnalyzeOut, errors
from ..state import ServerState, state

router = APIRouter()
T = TypeVar("T")
DISCONNECT_POLL_S = 0.5

_BODY = {
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


def face_json(face: Any, scale: float) -> dict[str, Any]:
    """A face as JSON, its box mapped back from the analysed size to the upload's size."""
    d = face.to_json()
    d.pop("landmarks", None)
    if scale != 1.0:
        d["box"] = [round(v / scale) for v in d["box"]]
    return d


async def read_upload(request: Request, cap: int) -> bytes:
    """The image bytes of a multipart field ``file`` (or the first file) or of the raw body, at most ``cap``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
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
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > cap:
                break
        data = bytes(buf)
    if len(data) > cap:
        raise ApiError(413, "too_large", f"image over the {cap}-byte limit", limit=cap)
    if not data:
        raise ApiError(422, "empty", "the upload is empty")
    return data


def _admit(request: Request, app: ServerState) -> None:
    """Rate cap per client, then the cap on photos in flight: refusals before a byte of the body is read."""
    s = app.settings
    if app.photo_buckets is not None:
        wait = app.photo_buckets.take(request.client.host if request.client else "?")
        if wait:
            retry = {"Retry-After": str(max(1, math.ceil(wait)))}
            msg = f"more than {s.analyze_rate:g} photos per second"
            raise ApiError(429, "rate_limited", msg, headers=retry, retry_after=round(wait, 3))
    if app.photos >= s.max_pending:
        raise ApiError(503, "busy", "too many photos waiting for analysis; retry shortly", headers={"Retry-After": "1"})


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
    openapi_extra={"requestBody": _BODY},
    responses=errors(401, 403, 413, 415, 422, 429, 503, 507),
)
async def analyze(
    request: Request,
    annotate: bool = False,
    format: Literal["jpeg", "png"] = "jpeg",  # noqa: A002 - the query parameter's public name
    log: bool = False,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    app = state(request)
    _admit(request, app)
    app.photos += 1
    try:
        data = await read_upload(request, app.settings.max_upload_bytes)
        out = await unless_gone(request, _analyze(app, data, annotate, format, log))
    finally:
        app.photos -= 1
    out["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return out


async def unless_gone(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` (after the body is read), cancelling it when the client disconnects meanwhile.

    A client that gave up must not keep its place in the decode budget or the inference queue (a waiting
    step is cancelled; a decode or database write already running finishes first)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                raise ApiError(499, "client_closed", "the client closed the connection; the photo was dropped")
    finally:
        if not task.done():
            task.cancel()


async def _analyze(app: ServerState, data: bytes, annotate: bool, fmt: str, log: bool) -> dict[str, Any]:
    """Decode (budgeted, already shrunk), analyse, log, annotate: one admitted photo."""
    s = app.settings
    d = await app.decoder.decode(data, max_pixels=s.max_pixels, max_side=s.analyze_max_side, max_aspect=s.max_aspect)
    del data
    try:
        faces = await app.inference.predict(d.image)
    except Exception as exc:
        raise ApiError(500, "inference_failed", f"analysis failed ({type(exc).__name__})") from exc
    out: dict[str, Any] = {
        "image": {"width": d.width, "height": d.height, "type": d.mime},
        "classes": list(getattr(app.inference.recognizer, "classes", EMOTIONS)),
        "faces": [face_json(f, d.scale) for f in faces],
        "logged": 0,
    }
    if log and s.mood_log and faces:
        now = time.time()
        ids = await run_in_threadpool(app.mood.add, [MoodRow(now, "photo", f.probs) for f in faces])
        out["logged"] = len(ids)
    if annotate:
        out["annotated"] = await run_in_threadpool(lambda: media.encode_b64(draw_faces(d.image, faces), fmt))
    return out
