"""The page (``/``), its static files, and the API docs page (Swagger UI served from here when installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..state import API

STATIC_DIR = Path(__file__).parent.parent / "static"


def swagger_ui_dir() -> Path | None:
    """Swagger UI 5's files as the ``fastapi-offline`` package ships them, or None when it is not installed.

    Only its ``static`` folder is used (found without importing the package). swagger-ui-bundle was tried
    first: its Swagger UI 4 refuses FastAPI's OpenAPI 3.1 schema."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


async def index(request: Request) -> FileResponse:
    """The single page, with a strict Content-Security-Policy (its own scripts, styles and socket only)."""
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


def mount(app: FastAPI) -> None:
    """Add the page, ``/static`` and ``/api/docs``; sets ``app.state.docs_offline``.

    FastAPI's docs page loads Swagger UI from a CDN, so offline it stays blank; the fastapi-offline
    package (in the web extra) ships the same files, served here."""
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    swagger_dir = swagger_ui_dir()
    app.state.docs_offline = swagger_dir is not None  # `emoscope serve` says so when it is not
    if swagger_dir is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger_dir), name="docs-assets")
    assets = (
        {"swagger_js_url": "/docs-assets/swagger-ui-bundle.js", "swagger_css_url": "/docs-assets/swagger-ui.css",
         "swagger_favicon_url": "/docs-assets/favicon.png"} if swagger_dir is not None else {}
    )  # fmt: skip

    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=f"{API}/openapi.json", title="emoscope API", **assets)

    app.add_api_route("/api/docs", api_docs, methods=["GET"], include_in_schema=False)
