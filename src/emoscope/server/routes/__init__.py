"""The app's routes, one module per group; :func:`include_all` mounts them on an app."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from ..state import API
from . import analyze, captures, health, mood, pages, stream


def include_all(app: FastAPI) -> None:
    """Mount the JSON API under ``/api/v1`` and the page, static files and API docs at the root."""
    api = APIRouter(prefix=API)
    for module in (health, analyze, mood, captures, stream):
        api.include_router(module.router)
    app.include_router(api)
    pages.mount(app)
