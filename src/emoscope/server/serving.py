"""Running the app with uvicorn, with the connection limits a server on a real network needs.

uvicorn alone keeps a connection that never finishes its request head open for good (its keep-alive timer
starts only after a first response), so :class:`GuardedH11Protocol` closes any connection that has not sent
a complete request head within ``header_timeout`` seconds. Request heads are capped at ``max_header_bytes``
(h11 answers 400), and ``max_connections`` bounds open connections plus running requests (uvicorn answers
503 beyond it). The listening socket is bound before anything else is created, so a port already in use
fails fast with a clear message and leaves no database behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import socket
import sys
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .settings import ServerSettings


class PortInUse(OSError):
    """The address to listen on cannot be bound (in use, or not this machine's)."""


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for each request head (slow or half-open clients are dropped)."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout, self._check_head)

    def on_response_complete(self) -> None:
        self._idle_since = self.loop.time()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _check_head(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed or now a WebSocket
            return
        now = self.loop.time()
        if self.cycle is not None and not self.cycle.response_complete:  # a request is being handled
            self._idle_since = now
        elif now - self._idle_since >= self.header_timeout:
            partial = bool(self.conn.trailing_data[0])
            if partial and self.conn.our_state is h11.IDLE:
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()
            return
        wait = max(0.05, self.header_timeout - (now - self._idle_since))
        self._head_timer = self.loop.call_later(wait, self._check_head)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); raises :class:`PortInUse` with a message saying what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortInUse(f"cannot listen on {host}:{port} ({exc.strerror or exc}): is another server running "
                        "there? Choose another --port") from None  # fmt: skip
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, settings: ServerSettings, log_level: str = "info", **extra: Any) -> uvicorn.Config:
    """The uvicorn configuration ``emoscope serve`` (and the hostile-request tests) run with."""
    protocol = type("GuardedH11", (GuardedH11Protocol,), {"header_timeout": settings.header_timeout})
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,
        ws="websockets-sansio",
        ws_max_size=4 * settings.ws_max_frame_bytes,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        server_header=False,
        log_level=log_level,
        **extra,
    )


def return_freed_memory() -> bool:
    """Make glibc give large freed blocks back to the system (Linux only; False elsewhere).

    Decoded pictures are tens of megabytes each and freed at once, but glibc raises its mmap threshold
    after each such free and then keeps later ones in per-thread heaps: the server's resident memory
    grew to the sum of every thread's largest decode. A fixed 1 MiB threshold returns big blocks on
    free, and two heaps per process keep small allocations from spreading over all decode threads.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_mmap_threshold, m_arena_max = -3, -8
    return bool(libc.mallopt(m_mmap_threshold, 1 << 20)) and bool(libc.mallopt(m_arena_max, 2))


def one_thread_opencv() -> None:
    """Make OpenCV run each call in its calling thread.

    The server parallelises by lanes of worker threads (small and large pictures); OpenCV's own pool, shared
    by every thread, would spread a 40 MP picture's resizing over all cores, beside a photo's work."""
    import cv2

    cv2.setNumThreads(1)


def serve(app: Any, settings: ServerSettings, sock: socket.socket, log_level: str = "info", **extra: Any) -> None:
    """Run the app on an already bound socket until interrupted."""
    return_freed_memory()
    one_thread_opencv()
    logging.getLogger("uvicorn.error").addFilter(_DenialLogFilter())
    uvicorn.Server(uvicorn_config(app, settings, log_level, **extra)).run(sockets=[sock])


class _DenialLogFilter(logging.Filter):
    """uvicorn's sans-I/O WebSocket protocol logs an error after a correct HTTP denial response (our 401/403
    refusals of WebSocket handshakes); drop that one misleading line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing handshake" not in record.getMessage()
