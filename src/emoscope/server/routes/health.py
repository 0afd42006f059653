"""``GET /health``: server, model and mood-log status (what the page's footer shows)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ... import __version__
from ...labels import EMOTIONS
from ..schemas import AuthInfo, HealthOut, LimitsInfo, ModelInfo, MoodInfo, errors
from ..state import state

router = APIRouter()


@router.get("/health", summary="Server, model and mood-log status", response_model=HealthOut,
            responses=errors(401, 403))  # fmt: skip
async def health(request: Request) -> HealthOut:
    """Status for the page and for monitoring; shows the kind of database, never its path or URL."""
    app = state(request)
    s, st, rec = app.settings, app.mood, app.inference.recognizer
    rows = await run_in_threadpool(st.count)
    return HealthOut(
        status="ok",
        version=__version__,
        uptime_s=round(time.time() - app.started, 1),
        model=ModelInfo(
            classes=list(getattr(rec, "classes", EMOTIONS)),
            backend=getattr(rec, "backend_name", None),
            detector=getattr(getattr(rec, "detector", None), "name", None),
        ),
        mood=MoodInfo(
            logging=s.mood_log,
            db=st.engine.dialect.name,
            schema_version=await run_in_threadpool(st.schema_version),
            rows=rows,
            retention_days=s.retention_days,
        ),
        limits=LimitsInfo(
            max_upload_bytes=s.max_upload_bytes,
            max_pixels=s.max_pixels,
            max_aspect=s.max_aspect,
            ws_max_frame_bytes=s.ws_max_frame_bytes,
            ws_max_frame_pixels=s.ws_max_frame_pixels,
            ws_max_fps=s.ws_max_fps,
            analyze_rate=s.analyze_rate,
        ),
        auth=AuthInfo(token_required=s.token is not None),
        streams=app.streams,
    )
