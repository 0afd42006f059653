"""Smile captures: list them, fetch one image, delete one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ..errors import ApiError
from ..schemas import CaptureOut, CapturesOut, errors
from ..state import API, state

router = APIRouter()

CaptureLimit = Annotated[int, Query(ge=1, le=200, description="at most this many, newest first")]
#: Ids are 64-bit database keys; a larger number is refused (422) before it reaches the database.
MAX_ID = 2**63 - 1
CaptureId = Annotated[int, Path(ge=1, le=MAX_ID, description="the capture's id, as listed")]


@router.get("/captures", summary="Smile captures, newest first (no image bytes)", response_model=CapturesOut,
            responses=errors(401, 403))  # fmt: skip
async def list_captures(request: Request, limit: CaptureLimit = 48) -> CapturesOut:
    items = await run_in_threadpool(state(request).mood.list_captures, limit)
    return CapturesOut(captures=[CaptureOut(**c, url=f"{API}/captures/{c['id']}") for c in items])


@router.get("/captures/{capture_id}", summary="One smile capture's image", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, **errors(401, 403, 404)})  # fmt: skip
async def get_capture(request: Request, capture_id: CaptureId) -> Response:
    got = await run_in_threadpool(state(request).mood.get_capture, capture_id)
    if got is None:
        raise ApiError(404, "not_found", f"no capture {capture_id}")
    data, mime = got
    return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=3600"})


@router.delete("/captures/{capture_id}", summary="Delete a smile capture", status_code=204,
               response_class=Response, responses=errors(401, 403, 404))  # fmt: skip
async def delete_capture(request: Request, capture_id: CaptureId) -> Response:
    if not await run_in_threadpool(state(request).mood.delete_capture, capture_id):
        raise ApiError(404, "not_found", f"no capture {capture_id}")
    return Response(status_code=204)
