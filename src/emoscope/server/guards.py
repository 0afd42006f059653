"""Request guards that run before any route: Host check, token check, body-size cap; plus a token bucket.

They live in one plain ASGI middleware so that every API call and every WebSocket handshake passes the
same checks before a byte of the body is read, and each refusal is the same JSON shape.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections import OrderedDict
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: WebSocket sub-protocol the page offers; a second offered protocol ``token.<TOKEN>`` carries the token,
#: because browsers cannot set headers on WebSocket requests (and query strings end up in logs).
WS_PROTOCOL = "emoscope"
TOKEN_PROTOCOL_PREFIX = "token."
_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),  # no embedding of answers (images, JSON) by other sites
)
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def error_body(status: int, code: str, message: str, **extra: object) -> dict:
    """The one JSON error shape: ``{"error": {"status", "code", "message", ...}}``."""
    return {"error": {"status": status, "code": code, "message": message, **extra}}


def is_loopback(host: str) -> bool:
    """True for localhost names and loopback addresses (127.0.0.0/8, ::1)."""
    h = host.strip("[]").lower()
    if h in ("localhost", "localhost.localdomain") or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _host_only(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _same_origin(origin: str, host: str) -> bool:
    """True when ``origin`` (scheme://host[:port]) names this server as reached through the Host header."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or not rest or "/" in rest:
        return False
    default = _DEFAULT_PORTS.get(scheme)

    def norm(netloc: str) -> str:
        return netloc[: -len(default) - 1] if default and netloc.endswith(f":{default}") else netloc

    return norm(rest) == norm(host.strip().lower())


def cross_site_reason(headers: dict[str, str], allowed_origins: Iterable[str] = ()) -> str | None:
    """Why a request comes from another web site (so must be refused), or None when it does not.

    Browsers send ``Origin`` on every cross-origin fetch, form post and WebSocket, and ``Sec-Fetch-Site`` on
    every request (also image and script loads, which carry no Origin). A request is same-site when its Origin
    is this server's own (or one allowed with ``--cors-origin``), or, without an Origin, when Sec-Fetch-Site
    is ``same-origin`` or ``none`` (typed address, bookmark) or absent (curl, scripts: not a browser).
    "same-site" is refused too: another port on localhost is another program.
    """
    allowed = set(allowed_origins)
    origin = headers.get("origin")
    if origin is not None:
        if "*" in allowed or origin in allowed or _same_origin(origin, headers.get("host", "")):
            return None
        return f"requests from the web page at {origin[:100]} are refused (only this server's own page may call it)"
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"requests from another web site are refused (Sec-Fetch-Site: {site})"
    return None


class BodyTooLarge(Exception):
    """Raised by the guarded ``receive`` once a request body passes the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class Guard:
    """ASGI middleware for /api/: Host allow-list (DNS-rebinding defence), cross-site refusal, token, body cap."""

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        max_body: int,
        allowed_hosts: Iterable[str] | None = None,
        api_prefix: str = "/api/",
        open_paths: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.allowed_hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}
        self.api_prefix = api_prefix
        self.open_paths = set(open_paths)
        self.allowed_origins = set(allowed_origins)

    def _headers(self, scope: Scope) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

    def token_ok(self, headers: dict[str, str]) -> bool:
        """True when no token is configured, or the request carries it (Bearer, X-Emoscope-Token, sub-protocol)."""
        if self.token is None:
            return True
        candidates = []
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            candidates.append(auth[7:].strip())
        if "x-emoscope-token" in headers:
            candidates.append(headers["x-emoscope-token"].strip())
        for proto in headers.get("sec-websocket-protocol", "").split(","):
            proto = proto.strip()
            if proto.startswith(TOKEN_PROTOCOL_PREFIX):
                candidates.append(proto[len(TOKEN_PROTOCOL_PREFIX) :])
        return any(hmac.compare_digest(c.encode(), self.token) for c in candidates)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = self._headers(scope)
        path: str = scope.get("path", "")
        if self.allowed_hosts is not None and _host_only(headers.get("host", "")) not in self.allowed_hosts:
            msg = "unexpected Host header; this server answers only to its own address (DNS-rebinding defence)"
            await self._refuse(scope, receive, send, 400, "bad_host", msg)
            return
        if not path.startswith(self.api_prefix) or path in self.open_paths:
            await self.app(scope, receive, self._with_headers(send) if scope["type"] == "http" else send)
            return
        why = cross_site_reason(headers, self.allowed_origins)
        if why is not None:
            await self._refuse(scope, receive, send, 403, "cross_site", f"{why}; see --cors-origin")
            return
        if not self.token_ok(headers):
            code = "missing_token" if not self._has_credentials(headers) else "bad_token"
            msg = "this server needs its access token: send 'Authorization: Bearer <token>'"
            await self._refuse(scope, receive, send, 401, code, msg, auth=True)
            return
        if scope["type"] == "http":
            length = headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await self._refuse(
                    scope, receive, send, 413, "too_large", f"request body over the {self.max_body}-byte limit"
                )
                return
            receive = self._capped(receive)
        await self.app(scope, receive, self._with_headers(send) if scope["type"] == "http" else send)

    @staticmethod
    def _with_headers(send: Send) -> Send:
        """Add no-sniff and no-referrer headers to every response (images and JSON are never guessed at)."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for k, v in _SECURITY_HEADERS:
                    if k not in names:
                        headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped

    @staticmethod
    def _has_credentials(headers: dict[str, str]) -> bool:
        return (
            "authorization" in headers
            or "x-emoscope-token" in headers
            or TOKEN_PROTOCOL_PREFIX in headers.get("sec-websocket-protocol", "")
        )

    def _capped(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return capped

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str, auth: bool = False
    ) -> None:
        body = json.dumps(error_body(status, code, message)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if auth:
            headers.append((b"www-authenticate", b'Bearer realm="emoscope"'))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": code})


class TokenBucket:
    """Allows ``rate`` events per second with bursts of ``burst``; ``take()`` says yes or how long to wait."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = float(rate), float(burst)
        self.tokens = float(burst)
        self.t = time.monotonic()

    def take(self, now: float | None = None) -> float:
        """0.0 when allowed (a token is spent), else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else float("inf")


class KeyedBuckets:
    """One :class:`TokenBucket` per key (client address), keeping at most ``max_keys`` (least recent dropped)."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str) -> float:
        b = self.buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self.buckets[key] = b
        while len(self.buckets) > self.max_keys:
            self.buckets.popitem(last=False)
        return b.take()
