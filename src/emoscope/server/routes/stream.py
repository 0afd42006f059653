"""``WS /stream``: live frames in, tracked faces out; mood rows sampled per track; optional smile capture.

Binary messages are JPEG/PNG/WebP frames; text messages are JSON config. One JSON answer per frame.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...labels import EMOTIONS
from .. import media
from ..decoding import Decoded
from ..errors import log, storage_error
from ..guards import WS_PROTOCOL, TokenBucket, error_body
from ..state import API, ServerState, state
from ..stream import StreamOptions, StreamState

router = APIRouter()
FRAME_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_CONTROL_CHARS = 4096


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    """Admit the connection (the guard has checked host, origin and token), then run it until either side closes."""
    app = state(ws)
    s = app.settings
    if app.streams >= s.ws_max_connections:
        await _deny(ws, 503, "too_many_streams", f"at most {s.ws_max_connections} live streams at once")
        return
    app.streams += 1
    try:
        await _Session(ws, app).run()
    except WebSocketDisconnect:
        return
    finally:
        app.streams -= 1


async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse(error_body(status, code, message), status_code=status))
    else:
        await ws.close(code=1008, reason=code)


class _Session:
    """One accepted connection: its tracker state, rate bucket and frame counter."""

    def __init__(self, ws: WebSocket, app: ServerState) -> None:
        s = app.settings
        self.ws, self.app, self.s = ws, app, s
        self.session = uuid.uuid4().hex[:12]
        options = StreamOptions(log=s.mood_log, smile_frames=s.smile_frames)
        self.state = StreamState(self.session, options, s.sample_interval)
        self.bucket = TokenBucket(s.ws_max_fps, max(1.0, s.ws_max_fps))
        self.seq = 0

    async def run(self) -> None:
        ws, s = self.ws, self.s
        offered = ws.scope.get("subprotocols", [])
        await ws.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
        limits = {"max_frame_bytes": s.ws_max_frame_bytes, "max_frame_pixels": s.ws_max_frame_pixels,
                  "max_fps": s.ws_max_fps, "max_aspect": s.ws_max_aspect,
                  "analysed_max_side": s.ws_max_side}  # fmt: skip
        classes = list(getattr(self.app.inference.recognizer, "classes", EMOTIONS))
        await ws.send_json({"type": "hello", "session": self.session, "classes": classes, "limits": limits,
                            "options": asdict(self.state.options), "log_allowed": s.mood_log})  # fmt: skip
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            text, data = msg.get("text"), msg.get("bytes")
            if text is not None:
                await self.on_text(text)
            elif data is not None and not await self.on_frame(data):
                return

    async def error(self, status: int, code: str, message: str, **extra: Any) -> None:
        await self.ws.send_json({"type": "error", **error_body(status, code, message, **extra)})

    async def on_text(self, text: str) -> None:
        """A config message: ``{"type": "config", "log": ..., "smile_capture": ..., "smile_frames": ...}``."""
        if len(text) > MAX_CONTROL_CHARS:
            await self.error(413, "too_large", f"control messages are at most {MAX_CONTROL_CHARS} characters")
            return
        try:
            cfg = json.loads(text)
            if not isinstance(cfg, dict) or cfg.get("type") != "config":
                raise ValueError('send {"type": "config", ...} as text; frames as binary')
            self.state.options.update(cfg, self.s.mood_log)
        except RecursionError:
            await self.error(422, "bad_message", "the message is nested too deeply; send a flat config object")
            return
        except (ValueError, TypeError) as exc:
            await self.error(422, "bad_message", str(exc))
            return
        await self.ws.send_json({"type": "config", "options": asdict(self.state.options)})

    async def on_frame(self, data: bytes) -> bool:
        """Analyse one frame and answer; False when the connection must close (a frame over the byte cap)."""
        s, app = self.s, self.app
        self.seq += 1
        seq = self.seq
        if len(data) > s.ws_max_frame_bytes:
            msg = f"frame of {len(data)} bytes; the limit is {s.ws_max_frame_bytes}"
            await self.error(413, "frame_too_large", msg, seq=seq)
            await self.ws.close(code=1009, reason="frame too large")
            return False
        wait = self.bucket.take()
        if wait:
            await self.error(429, "rate_limited", f"more than {s.ws_max_fps:g} frames per second; frame dropped",
                             seq=seq, retry_after=round(wait, 3))  # fmt: skip
            return True
        t_recv = time.perf_counter()
        try:
            info = await app.decoder.probe(data, max_pixels=s.ws_max_frame_pixels, max_aspect=s.ws_max_aspect,
                                           accept=FRAME_TYPES)  # fmt: skip
        except media.MediaError as exc:
            await self.error(exc.status, exc.code, exc.message, seq=seq)
            return True
        try:
            async with app.frame_slots():  # waits undecoded while ws_frames_in_flight frames are in work
                app.frames += 1
                try:
                    d, faces = await self.analyse(data, info)
                finally:
                    app.frames -= 1
        except media.MediaError as exc:
            await self.error(exc.status, exc.code, exc.message, seq=seq)
            return True
        except Exception as exc:
            await self.error(500, "inference_failed", f"analysis failed ({type(exc).__name__})", seq=seq)
            return True
        tracked, rows, capture, progress = self.state.observe(faces, time.monotonic(), time.time())
        logged = (await self.store(app.mood.add, rows, seq=seq) or 0) if rows else 0
        h, w = d.image.shape[:2]  # boxes are in the analysed frame's pixels (frames over max_side are shrunk)
        await self.ws.send_json({
            "type": "faces", "seq": seq, "width": int(w), "height": int(h),
            "faces": [tf.to_dict() for tf in tracked],
            "elapsed_ms": round((time.perf_counter() - t_recv) * 1000, 1),
            "logged": logged,
            "smile": {"on": self.state.options.smile_capture, "progress": round(progress, 3),
                      "frames": self.state.options.smile_frames},
        })  # fmt: skip
        if capture:
            mime = media.sniff(data) or "application/octet-stream"
            add = functools.partial(app.mood.add_capture, session=self.session, mime=mime)
            cid = await self.store(add, data, d.width, d.height, len(tracked), seq=seq)
            if cid is not None:
                capture = {"id": cid, "url": f"{API}/captures/{cid}", "n_faces": len(tracked), "width": d.width,
                           "height": d.height}  # fmt: skip
                await self.ws.send_json({"type": "capture", "capture": capture})
        return True

    async def analyse(self, data: bytes, info: media.ImageInfo) -> tuple[Decoded, list]:
        """Decode a probed frame (MediaError when corrupt) and find its faces, ahead of recent photos."""
        s, app = self.s, self.app
        d = await app.decoder.decode(data, max_pixels=s.ws_max_frame_pixels, max_side=s.ws_max_side, info=info)
        return d, await app.inference.predict(d.image, live=True)

    async def store(self, fn: Callable[..., Any], *args: Any, seq: int) -> Any:
        """Run a mood-store write; on a database failure (full disk: 507) tell the client and go on."""
        try:
            result = await run_in_threadpool(fn, *args)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("mood database error on the stream: %s", exc)
            e = storage_error(exc)
            await self.error(e.status, e.code, e.message, seq=seq)
            return None
        return len(result) if isinstance(result, list) else result
