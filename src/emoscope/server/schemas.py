"""The API's answers as pydantic models: they validate what routes return and document it in OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FaceOut(BaseModel):
    box: list[int] = Field(description="x, y, width, height in pixels of the uploaded image")
    score: float = Field(description="face detector confidence")
    label: str = Field(description="most likely emotion")
    probs: dict[str, float] = Field(description="emotion -> probability (sums to 1)")


class ImageOut(BaseModel):
    width: int = Field(description="width of the upload in pixels (after EXIF rotation)")
    height: int = Field(description="height of the upload in pixels (after EXIF rotation)")
    type: str = Field(description="MIME type decided by the bytes")


class AnnotatedImage(BaseModel):
    mime: str
    width: int
    height: int
    data: str = Field(description="base64 image bytes")


class AnalyzeOut(BaseModel):
    image: ImageOut
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
    model_config = ConfigDict(populate_by_name=True)

    start: str = Field(alias="from")
    end: str = Field(alias="to")
    bucket: str
    tz_offset: int
    classes: list[str]
    total: int
    buckets: list[MoodBucket]


class CaptureOut(BaseModel):
    id: int
    time: str = Field(description="ISO 8601 UTC")
    n_faces: int
    width: int
    height: int
    mime: str
    url: str


class CapturesOut(BaseModel):
    captures: list[CaptureOut]


class ModelInfo(BaseModel):
    classes: list[str]
    backend: str | None
    detector: str | None


class MoodInfo(BaseModel):
    logging: bool
    db: str = Field(description="kind of database (sqlite, postgresql); never its location")
    schema_version: int
    rows: int = Field(description="mood rows stored now")
    retention_days: float


class LimitsInfo(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    max_aspect: float
    ws_max_frame_bytes: int
    ws_max_frame_pixels: int
    ws_max_fps: float
    analyze_rate: float | None


class AuthInfo(BaseModel):
    token_required: bool


class HealthOut(BaseModel):
    status: str
    version: str
    uptime_s: float
    model: ModelInfo
    mood: MoodInfo
    limits: LimitsInfo
    auth: AuthInfo
    streams: int


class ErrorOut(BaseModel):
    error: dict[str, Any]


_ERROR_NAMES = {400: "Bad request", 401: "Missing or bad token", 403: "Cross-site request refused",
                404: "Not found", 413: "Too large", 415: "Not an accepted image type", 422: "Invalid input",
                429: "Rate limit", 503: "Busy or database unavailable", 507: "Disk full"}  # fmt: skip


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses."""
    return {c: {"model": ErrorOut, "description": _ERROR_NAMES.get(c, "Error")} for c in codes}
