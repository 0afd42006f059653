"""Server settings: every knob ``emoscope serve`` can turn, with safe local defaults and one consistency check."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

from .guards import is_loopback

_TOKEN_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class SettingsError(ValueError):
    """Settings that would make an unsafe or unusable server (e.g. a public bind without a token)."""


@dataclass
class ServerSettings:
    """Everything ``emoscope serve`` can set; the defaults are the safe, local ones."""

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None  # required when host is not loopback
    db: str | None = None  # SQLite path or database URL; None: the user's data folder
    mood_log: bool = True  # False: never write mood rows (captures still need smile mode)
    retention_days: float = 365.0
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_aspect: float = 20.0  # longer side / shorter side; beyond it photos and frames are refused
    analyze_max_side: int = 1920  # photos and frames are analysed at most this large; boxes are mapped back
    analyze_rate: float | None = None  # photo requests per second per client (None: no cap)
    analyze_burst: int = 20
    max_pending: int = 64  # photo requests admitted (reading, decoding or queued for inference) before 503
    decode_budget_bytes: int = 512 * 1024 * 1024  # bytes all decodes may hold at once (estimated from headers)
    decode_workers: int = field(default_factory=lambda: max(1, min(4, (os.cpu_count() or 2) // 2)))
    # ^ threads decoding large images at once (half the cores: the rest stay for inference; small images
    #   have their own lane)
    ws_max_frame_bytes: int = 1024 * 1024
    ws_max_frame_pixels: int = 1920 * 1080
    ws_max_fps: float = 15.0
    ws_max_side: int = 1280  # live frames are analysed at most this large (the page sends 480x360)
    ws_max_aspect: float = 4.0  # live frames come from cameras (4:3 to 32:9); strips are refused
    ws_max_connections: int = 16
    ws_frames_in_flight: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    # ^ live frames decoded or analysed at once, all streams together (half the cores: the rest stay for photos
    #   and large pictures); other frames wait undecoded, each stream having one frame in work at a time
    sample_interval: float = 1.0  # seconds between mood rows of one live track
    smile_frames: int = 10
    cors_origins: list[str] = field(default_factory=list)
    allowed_hosts: list[str] | None = None  # None: loopback names when bound to loopback, else any
    header_timeout: float = 10.0  # seconds a connection may take to send a complete request head
    max_header_bytes: int = 16 * 1024  # largest request head (request line + headers)
    max_connections: int = 512  # open connections + running requests before new requests get 503
    weights: str | None = None
    detector: str = "auto"
    backend: str = "auto"
    tta: str = "none"
    balance: float = 0.0  # Recognizer(balance=...): divide out the training class frequencies
    max_batch: int = 8

    @property
    def local(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> None:
        """Refuse unsafe or impossible combinations with a message that says what to do."""
        if self.token is not None:
            if len(self.token) < 16 or not set(self.token) <= _TOKEN_CHARS:
                raise SettingsError(
                    "the token must be at least 16 characters of A-Z a-z 0-9 - . _ ~ (use --token auto to generate one)"
                )
        elif not self.local:
            raise SettingsError(
                f"binding to {self.host} exposes the API beyond this computer: give a token with --token "
                "(or --token auto, or the EMOSCOPE_TOKEN environment variable)"
            )
        positive = ("max_upload_bytes", "max_pixels", "ws_max_frame_bytes", "ws_max_frame_pixels", "max_pending",
                    "analyze_max_side", "ws_max_side", "decode_budget_bytes", "decode_workers", "max_header_bytes",
                    "max_connections", "ws_frames_in_flight")  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        if self.ws_max_fps <= 0 or (self.analyze_rate is not None and self.analyze_rate <= 0):
            raise SettingsError("rates must be positive")
        if self.max_aspect < 1 or self.ws_max_aspect < 1 or self.header_timeout <= 0:
            raise SettingsError("max_aspect must be at least 1 and header_timeout positive")

    def effective_hosts(self) -> list[str] | None:
        """Host names the server answers to (DNS-rebinding defence); None: any."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        if self.local:
            return ["127.0.0.1", "localhost", "::1", self.host]
        return None


def generate_token() -> str:
    """A fresh random access token (URL-safe, 256 bits)."""
    return secrets.token_urlsafe(32)
