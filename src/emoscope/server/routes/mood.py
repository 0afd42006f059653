"""``GET /mood`` (aggregates per minute, hour or day) and ``GET /mood.csv`` (the rows as CSV)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...labels import EMOTIONS
from ...mood import BUCKETS, MoodError, parse_time
from ..errors import ApiError
from ..schemas import MoodOut, errors
from ..state import state

router = APIRouter()

# Query parameters shared by the mood routes (module level: FastAPI resolves annotations by name).
Source = Annotated[str | None, Query(pattern="^[a-z]{1,16}$", description="only rows from this source")]
From = Annotated[str | None, Query(alias="from", max_length=64, description="ISO 8601 date/time or Unix seconds")]
To = Annotated[str | None, Query(alias="to", max_length=64, description="exclusive end; default now")]
TzOffset = Annotated[int, Query(ge=-960, le=960, description="minutes east of UTC for bucket edges")]
MAX_BUCKETS = 20_000


#: Times the mood routes accept: the database keeps milliseconds since 1970, and bucket arithmetic and
#: ISO formatting need a year between 1 and 9999 on both sides of any time-zone offset.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def moment(value: str | None, name: str) -> datetime | None:
    """A query's time, or None; 422 ``bad_time`` for text that is not a time or is out of range."""
    try:
        t = parse_time(value)
    except MoodError as exc:
        raise ApiError(422, "bad_time", f"'{name}': {exc}") from None
    except (ValueError, OverflowError, OSError):  # numbers datetime cannot hold (1e20, inf, 55 digits)
        t = None
        if value is not None:
            raise ApiError(422, "bad_time", f"'{name}' is out of range: {str(value)[:40]!r}") from None
    if t is not None and not EARLIEST <= t <= LATEST:
        msg = f"'{name}' is out of range: use a time between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
        raise ApiError(422, "bad_time", msg)
    return t


def time_range(start: str | None, end: str | None, default_span: timedelta) -> tuple[datetime, datetime]:
    """('from', 'to') with defaults: 'to' now, 'from' ``default_span`` before 'to'."""
    t_end = moment(end, "to") or datetime.now(UTC)
    t_start = moment(start, "from") or (t_end - default_span)
    if t_start >= t_end:
        raise ApiError(422, "bad_range", "'from' must be before 'to'")
    return t_start, t_end


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.get("/mood", summary="Mood aggregates per minute, hour or day", response_model=MoodOut,
            response_model_by_alias=True, responses=errors(401, 403, 422))  # fmt: skip
async def mood(
    request: Request,
    start: From = None,
    end: To = None,
    bucket: Literal["minute", "hour", "day"] = "hour",
    tz_offset: TzOffset = 0,
    source: Source = None,
) -> dict[str, Any]:
    span = {"minute": timedelta(hours=1), "hour": timedelta(days=1), "day": timedelta(days=7)}[bucket]
    t_start, t_end = time_range(start, end, span)
    n_buckets = (t_end - t_start).total_seconds() * 1000 / BUCKETS[bucket]
    if n_buckets > MAX_BUCKETS:
        msg = f"that range has {n_buckets:.0f} {bucket}s; ask for {MAX_BUCKETS} at most"
        raise ApiError(422, "range_too_long", msg)
    rows = await run_in_threadpool(state(request).mood.aggregate, t_start, t_end, bucket, tz_offset, source)
    return {
        "from": _iso(t_start),
        "to": _iso(t_end),
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
    responses={200: {"content": {"text/csv": {}}}, **errors(401, 403, 422)},
)
async def mood_csv(request: Request, start: From = None, end: To = None, source: Source = None) -> StreamingResponse:
    t_start, t_end = moment(start, "from"), moment(end, "to")
    name = f"emoscope-mood-{datetime.now():%Y%m%d-%H%M}.csv"
    return StreamingResponse(
        state(request).mood.csv_lines(t_start, t_end, source),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
