"""``emoscope serve``: the web app (page + JSON API) on http://127.0.0.1:8000 by default."""

from __future__ import annotations

import argparse
import os
import sys

from . import UserError
from .options import add_recognizer_options, finite_float, recognizer_kwargs


def settings_from_args(args: argparse.Namespace):  # -> ServerSettings
    """Turn parsed flags (and EMOSCOPE_TOKEN) into checked server settings."""
    from ..recognizer import check_options
    from ..server import ServerSettings, SettingsError, generate_token

    rec = recognizer_kwargs(args)
    check_options(**{k: v for k, v in rec.items() if k != "weights"})  # before the port and database are touched
    token = args.token or os.environ.get("EMOSCOPE_TOKEN") or None
    if token == "auto":
        token = generate_token()
    s = ServerSettings(
        host=args.host,
        port=args.port,
        token=token,
        db=args.db,
        mood_log=not args.no_mood_log,
        retention_days=args.retention_days,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=int(args.max_megapixels * 1_000_000),
        analyze_rate=args.rate_limit,
        ws_max_fps=args.ws_max_fps,
        ws_max_frame_bytes=int(args.ws_max_frame_kb * 1024),
        cors_origins=args.cors_origin or [],
        weights=rec["weights"],
        detector=rec["detector"],
        backend=rec["backend"],
        tta=rec.get("tta", "none"),
        balance=rec.get("balance", 0.0),
    )
    try:
        s.check()
    except SettingsError as exc:
        raise UserError(str(exc)) from None
    return s


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401 - only to say which extra is missing
    except ImportError:
        raise UserError("the web app needs its extra: pip install 'emoscope[web]'") from None
    from ..mood import MoodError, MoodStore
    from ..server import create_app
    from ..server.serving import PortInUse, bind, serve

    s = settings_from_args(args)
    try:  # the port first: a port in use must not leave a new database behind
        sock = bind(s.host, s.port)
    except PortInUse as exc:
        raise UserError(str(exc)) from None
    try:
        store = MoodStore(s.db, s.retention_days)
    except MoodError as exc:
        sock.close()
        raise UserError(str(exc)) from None
    app = create_app(s, store=store)
    shown = "127.0.0.1" if s.host in ("0.0.0.0", "::") else s.host
    url = f"{'https' if args.ssl_certfile else 'http'}://{'[' + shown + ']' if ':' in shown else shown}:{s.port}/"
    print(f"emoscope {app.version}: open {url}" + (f"#token={s.token}" if s.token else ""), file=sys.stderr)
    print(f"mood log: {store.safe_url}" + ("" if s.mood_log else " (logging off)"), file=sys.stderr)
    if s.token and not s.local and not args.ssl_certfile:
        print("note: without --ssl-certfile the token and frames cross the network unencrypted, and browsers "
              "allow the camera only on https or localhost", file=sys.stderr)  # fmt: skip
    if not app.state.docs_offline:
        print("note: the API docs page (/api/docs) loads Swagger UI from a CDN, so it stays blank offline; "
              "pip install 'emoscope[web]' (fastapi-offline) serves it from here", file=sys.stderr)  # fmt: skip
    try:
        serve(app, s, sock, log_level=args.log_level, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    finally:
        store.close()
        sock.close()
    return 0


def _port(text: str) -> int:
    """argparse type: a TCP port number, 0 to 65535."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a port number, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"ports are 0 to 65535, got {v}")
    return v


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the web app: live webcam, photos, mood dashboard")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000; 0: any free one)")
    p.add_argument("--token", help="access token required on every API call; 'auto' generates one "
                   "(default: $EMOSCOPE_TOKEN; required when --host is not loopback)")  # fmt: skip
    p.add_argument("--db", help="mood database: SQLite file or database URL (default: the user's data folder)")
    p.add_argument("--no-mood-log", action="store_true", help="never write mood rows")
    p.add_argument(
        "--retention-days", type=finite_float, default=365.0, help="delete mood rows older than this (0: keep)"
    )
    p.add_argument("--max-upload-mb", type=finite_float, default=10.0, help="largest photo upload (default 10 MB)")
    p.add_argument("--max-megapixels", type=finite_float, default=40.0, help="largest photo in megapixels (default 40)")
    p.add_argument("--rate-limit", type=finite_float, help="photo requests per second per client (default: no cap)")
    p.add_argument(
        "--ws-max-fps", type=finite_float, default=15.0, help="live frames per second per stream (default 15)"
    )
    p.add_argument("--ws-max-frame-kb", type=finite_float, default=1024.0, help="largest live frame (default 1024 KiB)")
    p.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow API calls from this web origin (repeatable; default: none)")  # fmt: skip
    add_recognizer_options(p, tta="none", margin=False)
    p.add_argument("--ssl-certfile", help="serve https with this certificate (needed for cameras beyond localhost)")
    p.add_argument("--ssl-keyfile")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
