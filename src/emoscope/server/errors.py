"""One JSON error shape for every refusal, and the mapping of library errors to HTTP statuses.

Every handler here answers inside the app, so a refused request never closes a keep-alive connection
(an exception that escapes to the server does). :class:`CatchAll` turns anything unexpected into a JSON 500
with the traceback in the server log, never in the answer.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import EmoscopeError
from . import media
from .guards import BodyTooLarge, error_body

log = logging.getLogger("emoscope.server")


class ApiError(Exception):
    """Raised by routes; turned into the JSON error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
    return JSONResponse(error_body(status, code, message, **extra), status_code=status, headers=headers)


def storage_error(exc: BaseException) -> ApiError:
    """A database failure as the answer the client should get: 507 when the disk is full, else 503.

    Full disks show up as SQLite's "database or disk is full" or an ENOSPC OSError; read-only files and
    locks are the server's problem too, so they are 503 (retry later), never a bare 500.
    """
    text = str(getattr(exc, "orig", None) or exc).lower()
    if "disk is full" in text or "no space" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return ApiError(507, "disk_full", "the mood database's disk is full: nothing was saved; free some space "
                        "on the server (or start it with --no-mood-log)")  # fmt: skip
    if "readonly" in text or "read-only" in text:
        return ApiError(503, "db_read_only", "the mood database is read-only on the server: nothing was saved")
    if "locked" in text or "busy" in text:
        return ApiError(503, "db_busy", "the mood database is busy; retry shortly", headers={"Retry-After": "1"})
    return ApiError(503, "db_unavailable", f"the mood database is unavailable ({type(exc).__name__})")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every known failure into the JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return json_error(exc.status, exc.code, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(media.MediaError)
    async def _media_error(_: Request, exc: media.MediaError) -> JSONResponse:
        return json_error(exc.status, exc.code, exc.message)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return json_error(413, "too_large", f"request body over the {exc.limit}-byte limit")

    @app.exception_handler(sa.exc.SQLAlchemyError)
    async def _db_error(_: Request, exc: sa.exc.SQLAlchemyError) -> JSONResponse:
        log.warning("mood database error: %s", exc)
        e = storage_error(exc)
        return json_error(e.status, e.code, e.message, e.headers)

    @app.exception_handler(EmoscopeError)
    async def _user_error(_: Request, exc: EmoscopeError) -> JSONResponse:
        return json_error(422, "invalid_input", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return json_error(422, "invalid_input", "; ".join(problems) or "invalid input")


class CatchAll:
    """ASGI middleware just outside the routes: an unexpected exception becomes a JSON 500, logged here.

    Starlette's own last-resort handler re-raises after answering, which makes uvicorn drop the
    connection (and any pipelined request); this one answers and keeps the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            response = json_error(500, "internal_error", f"unexpected server error ({type(exc).__name__})")
            await response(scope, receive, send)
