"""``POST /analyze``: faces and emotions in one uploaded photo (optionally annotated, optionally logged)."""

from __future__ import annotations

import math
import time
from typing import Any, Literal

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
    d = face.to_dict()
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
    """Rate cap per client, then the queue cap: refusals before a byte of the body is read."""
    s = app.settings
    if app.photo_buckets is not None:
        wait = app.photo_buckets.take(request.client.host if request.client else "?")
        if wait:
            retry = {"Retry-After": str(max(1, math.ceil(wait)))}
            msg = f"more than {s.analyze_rate:g} photos per second"
            raise ApiError(429, "rate_limited", msg, headers=retry, retry_after=round(wait, 3))
    if app.inference.pending >= s.max_pending:
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
    s = app.settings
    _admit(request, app)
    data = await read_upload(request, s.max_upload_bytes)
    bgr, mime = await run_in_threadpool(media.decode, data, s.max_pixels)
    work, scale = media.fit(bgr, s.analyze_max_side)
    try:
        faces = await app.inference.predict(work)
    except Exception as exc:
        raise ApiError(500, "inference_failed", f"analysis failed: {exc}") from exc
    out: dict[str, Any] = {
        "image": {"width": int(bgr.shape[1]), "height": int(bgr.shape[0]), "type": mime},
        "classes": list(getattr(app.inference.recognizer, "classes", EMOTIONS)),
        "faces": [face_json(f, scale) for f in faces],
        "logged": 0,
    }
    if log and s.mood_log and faces:
        now = time.time()
        ids = await run_in_threadpool(app.mood.add, [MoodRow(now, "photo", f.probs) for f in faces])
        out["logged"] = len(ids)
    if annotate:
        out["annotated"] = await run_in_threadpool(lambda: media.encode_b64(draw_faces(work, faces), format))
    out["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    return out
