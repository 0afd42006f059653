"""Hostile inputs against a real ``emoscope serve`` on loopback: status, time and server memory for each.

Starts the server (shipped model, own temporary mood database) on a free 127.0.0.1 port and replays the
requests of issue 25 one by one (cross-site calls, out-of-range values, huge ids, a 6300 x 6300 RGBA PNG,
a 1 x 2,073,600 strip, nested JSON, 300 half-open connections, a 10 MB request head, a busy port), then a
storm: 16 concurrent 40-megapixel uploads and 16 WebSocket clients sending extreme-aspect frames while another
client posts a normal photo (with ``log=1``) over and over. Samples the server's resident memory every 0.1 s;
counts the mood rows the server acknowledged and checks the database holds them all after it stops. A full
disk is simulated separately (SQLite's ``max_page_count`` on a second, in-process server with the same app).
Writes ``benchmarks/ABUSE.md`` with the command. Only loopback addresses; every phase has a deadline.

    python benchmarks/abuse.py                  # about two minutes on a small machine; writes ABUSE.md
    python benchmarks/abuse.py --out -          # print only
    python benchmarks/abuse.py --only storm     # only the storm (prints; --out FILE to write it)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import shlex
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from load import free_port, photo_variants, rss_kib, wait_ready
from machine import cpu_name

TARGET_RSS_MIB = 1536
TARGET_PHOTO_S = 1.0
DEFAULT_OUT = Path(__file__).with_name("ABUSE.md")
EVIL = "https://evil.example"


# ------------------------------------------------------------------------------------------ inputs


def rgba_png(side: int = 6300) -> bytes:
    """A flat RGBA PNG just under 40 MP: ~170 KB on the wire, 159 MB once decoded."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (side, side), (40, 90, 160, 255)).save(buf, "PNG")
    return buf.getvalue()


def big_jpeg() -> bytes:
    """A 7300 x 5470 (39.9 MP) JPEG under the 10 MB cap: a gradient with a face pasted in."""
    from skimage import data

    h, w = 5470, 7300
    img = np.empty((h, w, 3), np.uint8)
    img[:] = np.linspace(40, 200, w, dtype=np.uint8)[None, :, None]
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    img[2000:2512, 3000:3512] = face
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()


def strip_png(w: int, h: int) -> bytes:
    """A flat gray PNG of w x h (Pillow: libpng's writer in OpenCV refuses rows over a million pixels)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (128, 128, 128)).save(buf, "PNG")
    return buf.getvalue()


def gray16_png() -> bytes:
    """The astronaut photo as a 16-bit grayscale PNG (issue 25: it read as black and white on the server)."""
    from skimage import data

    gray = cv2.cvtColor(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), cv2.COLOR_BGR2GRAY)
    return cv2.imencode(".png", gray.astype(np.uint16) * 257)[1].tobytes()


# ------------------------------------------------------------------------------------------ probes


@dataclass
class Row:
    name: str
    status: str
    seconds: float
    rss_mib: float
    ok: bool
    note: str = ""


@dataclass
class Server:
    port: int
    pid: int
    acknowledged: int = 0  # mood rows the server said it committed

    def rss(self) -> float:
        return rss_kib(self.pid).get("VmRSS", 0) / 1024

    def peak(self) -> float:
        return rss_kib(self.pid).get("VmHWM", 0) / 1024


def http_call(
    srv: Server, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 120
) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def pipelined(srv: Server, path: str) -> tuple[str, bool]:
    """Status of ``GET path`` and whether a /health request pipelined behind it on the same connection answered."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        head = "Host: 127.0.0.1\r\n"
        s.sendall(f"GET {path} HTTP/1.1\r\n{head}\r\nGET /api/v1/health HTTP/1.1\r\n{head}\r\n".encode())
        data, deadline = b"", time.monotonic() + 30
        while data.count(b"HTTP/1.1 ") < 2 and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    status = first.split()[1].decode() if len(first.split()) > 1 else "closed"
    return status + ("" if b"Traceback" not in data else " +traceback"), b"HTTP/1.1 200" in rest


def ws_exchange(srv: Server, messages: list[bytes | str], origin: str | None = None) -> tuple[str, int | None]:
    """Send messages on one stream; the answers' statuses (or the refusal) and the close code."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{srv.port}/api/v1/stream"
    try:
        with connect(url, origin=origin, max_size=2**22, open_timeout=30) as ws:
            json.loads(ws.recv())
            got = []
            for m in messages:
                ws.send(m)
                msg = json.loads(ws.recv(timeout=120))
                got.append(
                    str(msg["error"]["status"]) + " " + msg["error"]["code"] if msg["type"] == "error" else msg["type"]
                )
        return ", ".join(got), ws.close_code
    except InvalidStatus as exc:
        return f"refused {exc.response.status_code}", None


def half_open(srv: Server, n: int = 300, wait: float = 15.0) -> tuple[str, bool]:
    """Open ``n`` connections, half of them with half a request head; how many the server closed within ``wait``."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=wait)
        if i % 2:
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0")
        socks.append(s)
    closed = 0
    deadline = time.monotonic() + wait
    for s in socks:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(1024)
            closed += data == b"" or data.startswith(b"HTTP/1.1 408")
        except (TimeoutError, ConnectionResetError):
            closed += isinstance(sys.exc_info()[1], ConnectionResetError)
        s.close()
    return f"{closed}/{n} closed by the server", closed == n


def huge_head(srv: Server, mb: int = 10) -> tuple[str, bool]:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent = 0
        try:
            while sent < mb * 1024 * 1024:
                s.sendall(b"a" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
    status = answer.split()[1].decode() if answer.startswith(b"HTTP/") else "reset"
    return f"{status} after {sent / 1024:.0f} KiB sent", status in ("400", "431", "reset")


def busy_port(srv: Server, tmp: str) -> tuple[str, bool]:
    db = Path(tmp) / "busy" / "mood.sqlite3"
    out = subprocess.run(
        [sys.executable, "-m", "emoscope", "serve", "--port", str(srv.port), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EMOSCOPE_DATA_DIR": str(Path(tmp) / "busy-data")},
    )
    line = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
    ok = out.returncode == 2 and not db.parent.exists() and "Traceback" not in out.stderr
    return f"exit {out.returncode}, database {'created' if db.exists() else 'not created'}: {line[:90]}", ok


def full_disk() -> tuple[str, bool]:
    """A second server (same app, fake one-face recognizer, in-process) whose SQLite file cannot grow."""
    code = textwrap.dedent("""
        import json, sys, tempfile
        import sqlalchemy as sa
        from fastapi.testclient import TestClient
        from emoscope.labels import EMOTIONS
        from emoscope.mood import MoodStore
        from emoscope.recognizer import Face
        from emoscope.server import ServerSettings, create_app

        class One:
            classes = EMOTIONS
            def predict_arrays(self, arrays):
                return [[Face((1, 1, 8, 8), 0.9, {e: 1 / 7 for e in EMOTIONS}, "happy")] for _ in arrays]

        st = MoodStore(tempfile.mkdtemp() + "/m.db")
        with st.engine.connect() as c:
            pages = c.exec_driver_sql("PRAGMA page_count").scalar()
        sa.event.listen(st.engine, "connect", lambda d, r: d.execute(f"PRAGMA max_page_count={pages}"))
        st.engine.dispose()
        try:
            while True:
                st.log("photo", {"happy": 1.0})
        except sa.exc.OperationalError:
            pass
        import cv2, numpy as np
        jpg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
        with TestClient(create_app(ServerSettings(), recognizer=One(), store=st), base_url="http://127.0.0.1") as c:
            r = c.post("/api/v1/analyze?log=true", content=jpg)
            print(json.dumps({"status": r.status_code, "body": r.json()}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    try:
        got = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"failed: {out.stderr[-200:]}", False
    err = got["body"].get("error", {})
    return f"{got['status']} {err.get('code')}: {err.get('message', '')[:60]}", got["status"] in (503, 507)


def status_check(srv: Server):
    """``status_of(method, path, body, headers, want)``: a probe answering (status and note, as expected?)."""

    def status_of(method: str, path: str, body: bytes | None = None, headers: dict | None = None, want=(200,)):
        def run() -> tuple[str, bool]:
            st, data = http_call(srv, method, path, body, headers)
            try:
                js = json.loads(data)
            except ValueError:
                js = {}
            if "logged" in js:
                srv.acknowledged += js["logged"]
            code = js.get("error", {}).get("code", "")
            note = f" {code}" if code else ""
            if "image" in js:
                note = f" {js['image']['width']}x{js['image']['height']}, {len(js['faces'])} face(s)"
            return f"{st}{note}" + (
                " +traceback" if b"Traceback" in data else ""
            ), st in want and b"Traceback" not in data

        return run

    return status_of


def web_cases(srv: Server) -> list[tuple[str, Callable[[], tuple[str, bool]]]]:
    """Cross-site calls and out-of-range query values (each with a request pipelined behind it)."""
    status_of = status_check(srv)
    face = photo_variants()[0]
    cases: list[tuple[str, Callable[[], tuple[str, bool]]]] = []
    xs = {"Origin": EVIL, "Content-Type": "text/plain"}
    cases += [
        (
            "cross-site POST /analyze?log=true (Origin: evil)",
            status_of("POST", "/api/v1/analyze?log=true", face, xs, (403,)),
        ),
        (
            "cross-site GET /mood (Sec-Fetch-Site: cross-site)",
            status_of("GET", "/api/v1/mood", headers={"Sec-Fetch-Site": "cross-site"}, want=(403,)),
        ),
        (
            "cross-site GET /mood.csv (Origin: evil)",
            status_of("GET", "/api/v1/mood.csv", headers={"Origin": EVIL}, want=(403,)),
        ),
        (
            "cross-site GET /captures (Origin: null)",
            status_of("GET", "/api/v1/captures", headers={"Origin": "null"}, want=(403,)),
        ),
        (
            "cross-site DELETE /captures/1 (Origin: evil)",
            status_of("DELETE", "/api/v1/captures/1", headers={"Origin": EVIL}, want=(403,)),
        ),
        (
            "cross-site WebSocket (Origin: evil)",
            lambda: (lambda r: (r[0], r[0] == "refused 403"))(ws_exchange(srv, [], EVIL)),
        ),
    ]
    for q in (
        "mood?from=1e20",
        "mood?from=-1e20",
        "mood?from=inf",
        "mood?to=" + "9" * 55,
        "mood.csv?from=1e20",
        "mood.csv?to=-1e20",
        "mood?bucket=day&from=0001-01-01",
        "captures/99999999999999999999",
    ):
        shown = q if len(q) < 40 else q[:28] + "...(55 digits)"
        cases.append(
            (
                f"GET /{shown} + a pipelined request",
                lambda q=q: (
                    lambda r: (
                        r[0] + (", pipelined answered" if r[1] else ", PIPELINED LOST"),
                        r[0] in ("404", "422") and r[1],
                    )
                )(pipelined(srv, f"/api/v1/{q}")),
            )
        )
    return cases


def input_cases(srv: Server, tmp: str) -> list[tuple[str, Callable[[], tuple[str, bool]]]]:
    """Huge ids, giant and odd pictures, stream abuse, slow and huge request heads, a busy port, a full disk."""
    status_of = status_check(srv)
    cases: list[tuple[str, Callable[[], tuple[str, bool]]]] = [
        (
            "DELETE /captures/99999999999999999999",
            status_of("DELETE", "/api/v1/captures/99999999999999999999", want=(422,)),
        ),
        ("6300x6300 RGBA PNG (just under 40 MP)", status_of("POST", "/api/v1/analyze", rgba_png())),
        ("1 x 2,073,600 PNG on /analyze", status_of("POST", "/api/v1/analyze", strip_png(2_073_600, 1), want=(422,))),
        ("16-bit grayscale PNG of a face", status_of("POST", "/api/v1/analyze", gray16_png())),
        (
            "1 x 2,073,600 PNG on the stream",
            lambda: (lambda r: (f"{r[0]}, close {r[1]}", "422" in r[0] and r[1] == 1000))(
                ws_exchange(srv, [strip_png(2_073_600, 1)])
            ),
        ),
        (
            "4 KB nested JSON on the stream",
            lambda: (lambda r: (f"{r[0]}, close {r[1]}", "422" in r[0] and r[1] == 1000))(
                ws_exchange(srv, ["[" * 2048 + "]" * 2048])
            ),
        ),
        (
            "/health shows no database path",
            lambda: (lambda r: ("path shown" if tmp.encode() in r[1] else "no path", tmp.encode() not in r[1]))(
                http_call(srv, "GET", "/api/v1/health")
            ),
        ),
        ("300 half-open connections (header timeout 10 s)", lambda: half_open(srv)),
        ("10 MB request header", lambda: huge_head(srv)),
        ("`emoscope serve` on a port in use", lambda: busy_port(srv, tmp)),
        ("full disk while logging (max_page_count, in-process)", full_disk),
    ]
    return cases


def hostile_inputs(srv: Server, tmp: str) -> list[Row]:
    """Each hostile input once, in turn: its answer, whether as expected, its time and the server's RSS after."""
    rows = []
    for name, fn in web_cases(srv) + input_cases(srv, tmp):
        t0 = time.monotonic()
        try:
            status, ok = fn()  # type: ignore[operator]
        except Exception as exc:  # report, keep going
            status, ok = f"client error {type(exc).__name__}: {exc}"[:120], False
        rows.append(Row(name, status, time.monotonic() - t0, srv.rss(), ok))
        print(f"{'ok ' if ok else 'BAD'} {name}: {status} ({rows[-1].seconds:.2f} s)", file=sys.stderr)
    return rows


# ------------------------------------------------------------------------------------------ storm


@dataclass
class Storm:
    uploads: list[tuple[str, int, float]] = field(default_factory=list)  # kind, status, seconds
    ws_statuses: dict[str, int] = field(default_factory=dict)
    ws_errors: list[str] = field(default_factory=list)
    photo_latencies: list[float] = field(default_factory=list)
    photo_errors: list[str] = field(default_factory=list)
    photo_faces: list[int] = field(default_factory=list)
    photo_server_s: list[float] = field(default_factory=list)  # the server's own elapsed_ms
    max_rss: float = 0.0
    seconds: float = 0.0
    sizes_kb: tuple[int, int] = (0, 0)  # the PNG's and the JPEG's


async def storm(srv: Server, limit_s: float) -> Storm:
    import httpx2 as httpx
    from websockets.asyncio.client import connect

    out = Storm()
    png, jpg = rgba_png(), big_jpeg()
    out.sizes_kb = (len(png) // 1024, len(jpg) // 1024)
    frames = [strip_png(2_073_600, 1), strip_png(103_680, 20), strip_png(6600, 314), strip_png(2880, 720)]
    normal = photo_variants()[0]
    url = f"http://127.0.0.1:{srv.port}"
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            out.max_rss = max(out.max_rss, srv.rss())
            await asyncio.sleep(0.1)

    async def upload(client, kind: str, data: bytes) -> None:
        t0 = time.monotonic()
        try:
            r = await client.post(f"{url}/api/v1/analyze", content=data)
            out.uploads.append((kind, r.status_code, time.monotonic() - t0))
        except Exception as exc:
            out.uploads.append((f"{kind} {type(exc).__name__}", 0, time.monotonic() - t0))

    async def streamer(k: int) -> None:
        try:
            async with connect(f"ws://127.0.0.1:{srv.port}/api/v1/stream", max_size=2**22, open_timeout=60) as ws:
                await ws.recv()
                i = k
                while not done.is_set():
                    await ws.send(frames[i % len(frames)])
                    i += 1
                    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
                    key = msg["type"] if msg["type"] != "error" else f"{msg['error']['status']} {msg['error']['code']}"
                    out.ws_statuses[key] = out.ws_statuses.get(key, 0) + 1
                    await asyncio.sleep(0.05)
        except Exception as exc:
            out.ws_errors.append(f"{type(exc).__name__}: {exc}"[:120])

    async def photographer(client) -> None:
        while not done.is_set():
            t0 = time.monotonic()
            try:
                r = await client.post(f"{url}/api/v1/analyze?log=1", files={"file": ("face.jpg", normal, "image/jpeg")})
                dt = time.monotonic() - t0
                if r.status_code == 200:
                    out.photo_latencies.append(dt)
                    body = r.json()
                    srv.acknowledged += body["logged"]
                    out.photo_faces.append(len(body["faces"]))
                    out.photo_server_s.append(body["elapsed_ms"] / 1000)
                else:
                    out.photo_errors.append(f"HTTP {r.status_code}")
            except Exception as exc:
                out.photo_errors.append(f"{type(exc).__name__}")
            await asyncio.sleep(0.2)

    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=limit_s, limits=limits) as client, httpx.AsyncClient(timeout=30) as own:
        sampler = asyncio.create_task(sample())
        side = [asyncio.create_task(streamer(k)) for k in range(16)] + [asyncio.create_task(photographer(own))]
        await asyncio.sleep(1.0)  # streams connected, photos flowing
        uploads = [upload(client, "PNG", png) for _ in range(8)] + [upload(client, "JPEG", jpg) for _ in range(8)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*uploads), timeout=limit_s)
        await asyncio.sleep(1.0)
        done.set()
        await asyncio.gather(*side, sampler, return_exceptions=True)
    out.seconds = time.monotonic() - t0
    return out


# ------------------------------------------------------------------------------------------ report


def db_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM mood_events").fetchone()[0])


@dataclass
class Run:
    """What one run measured: the hostile inputs' rows, the storm, the server's memory and log, the mood rows."""

    rows: list[Row]
    storm: Storm | None
    peak: float  # MiB, VmHWM over the whole run
    rss_start: float
    load: tuple[float, float]  # 1-minute load average at the start and the end
    server_err: str
    stored: int
    acknowledged: int


def run_all(parts: str, storm_limit: float) -> Run:
    """Start ``emoscope serve`` (own database, free port), replay the chosen parts against it, stop it."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "mood.sqlite3"
        cmd = [sys.executable, "-m", "emoscope", "serve", "--port", str(port), "--db", str(db),
               "--log-level", "warning"]  # fmt: skip
        env = {**os.environ, "EMOSCOPE_DATA_DIR": tmp}
        env.pop("EMOSCOPE_TOKEN", None)
        err_path = Path(tmp) / "server.err"
        with open(err_path, "w") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        srv = Server(port, proc.pid)
        rows: list[Row] = []
        st = None
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            http_call(srv, "POST", "/api/v1/analyze", photo_variants()[0])  # warm-up
            rss_start = srv.rss()
            load_start = os.getloadavg()[0]
            if parts in ("all", "hostile"):
                rows = hostile_inputs(srv, tmp)
            if parts in ("all", "storm"):
                print("storm: 16 x 40 MP uploads + 16 streams + a normal photo client...", file=sys.stderr)
                st = asyncio.run(storm(srv, storm_limit))
            peak = srv.peak()
            load_end = os.getloadavg()[0]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        server_err = err_path.read_text()
        stored = db_rows(db)
    return Run(rows, st, peak, rss_start, (load_start, load_end), server_err, stored, srv.acknowledged)


def first_traceback(server_err: str) -> str:
    """The end of the first traceback in the server's log ('' when there is none)."""
    if "Traceback" not in server_err:
        return ""
    tb = server_err[server_err.index("Traceback") :].splitlines()
    end = next((i for i, ln in enumerate(tb[1:], 1) if ln and not ln[0].isspace()), len(tb) - 1)
    return "\n".join(["Traceback (most recent call last): ...", *tb[max(1, end - 12) : end + 1]])


def latencies(st: Storm | None) -> np.ndarray:
    return np.asarray(st.photo_latencies) if st and st.photo_latencies else np.asarray([np.nan])


def targets_of(run: Run) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for each target the run's parts can show."""
    st = run.storm
    statuses = [r.status for r in run.rows] + [str(s) for _, s, _ in (st.uploads if st else [])]
    n500 = sum(s.startswith("500") for s in statuses) + sum(k.startswith("500") for k in (st.ws_statuses if st else {}))
    tracebacks = run.server_err.count("Traceback")
    out = [
        ("no 500 answer", n500 == 0, f"{n500}"),
        ("no traceback in answers or the server log", tracebacks == 0 and "traceback" not in " ".join(statuses),
         f"{tracebacks} in the log"),
        (f"peak server RSS under {TARGET_RSS_MIB} MiB", run.peak < TARGET_RSS_MIB, f"{run.peak:.0f} MiB (VmHWM)"),
    ]  # fmt: skip
    if st is not None:
        lat = latencies(st)
        ok = bool(st.photo_latencies) and float(lat.max()) <= TARGET_PHOTO_S and not st.photo_errors
        out.append((f"normal photo answered within {TARGET_PHOTO_S:g} s throughout the storm", ok,
                    f"max {np.nanmax(lat):.2f} s, p50 {np.nanmedian(lat):.2f} s over {len(st.photo_latencies)} "
                    f"photos, {len(st.photo_errors)} failed"))  # fmt: skip
    out.append(("no acknowledged mood row lost", run.stored >= run.acknowledged,
                f"{run.acknowledged} acknowledged, {run.stored} stored"))  # fmt: skip
    if run.rows:
        out.append(("every hostile input answered as expected", all(r.ok for r in run.rows),
                    f"{sum(r.ok for r in run.rows)}/{len(run.rows)}"))  # fmt: skip
    return out


def storm_lines(st: Storm, peak: float, storm_limit: float) -> list[str]:
    """The storm's section of the report."""
    lat = latencies(st)
    upload_codes: dict[str, int] = {}
    for kind, status, _ in st.uploads:
        upload_codes[f"{kind} {status}"] = upload_codes.get(f"{kind} {status}", 0) + 1
    up_times = [s for _, _, s in st.uploads]
    server = np.asarray(st.photo_server_s or [np.nan])
    return [
        "## Storm",
        "",
        f"16 concurrent uploads of 40 MP pictures (8 x 6300x6300 RGBA PNG of {st.sizes_kb[0]} KB, "
        f"8 x 7300x5470 JPEG of {st.sizes_kb[1]} KB) while 16 WebSocket clients send extreme-aspect "
        "frames (1x2073600, 20x103680, 6600x314, and 2880x720 at the stream's 4:1 cap) as fast as answered, and one "
        f"client posts a 512x512 face photo with `log=1` every 0.2 s. Lasted {st.seconds:.1f} s.",
        "",
        f"- uploads: {', '.join(f'{k}: {v}' for k, v in sorted(upload_codes.items()))}; "
        f"answered in {min(up_times, default=0):.1f}-{max(up_times, default=0):.1f} s; "
        f"{16 - len(st.uploads)} not answered within the {storm_limit:g} s the client waits (the server "
        "drops an upload whose client has gone)",
        f"- stream answers: {', '.join(f'{k}: {v}' for k, v in sorted(st.ws_statuses.items()))}"
        + (f"; client errors: {st.ws_errors[:3]}" if st.ws_errors else ""),
        f"- normal photo: {len(st.photo_latencies)} answered, latency p50 {np.nanmedian(lat):.2f} s, p95 "
        f"{np.nanpercentile(lat, 95):.2f} s, max {np.nanmax(lat):.2f} s (the server's own elapsed_ms: p50 "
        f"{np.nanmedian(server):.2f} s, max {np.nanmax(server):.2f} s); faces found per photo: "
        f"{sorted(set(st.photo_faces))}; failures: {st.photo_errors[:5] or 'none'}",
        f"- server RSS: max sampled {st.max_rss:.0f} MiB during the storm, peak {peak:.0f} MiB (VmHWM, whole run)",
        "",
        "How the server holds up: a picture's header is read without decoding it; decoding runs within a shared "
        "byte budget, large pictures on threads of their own; inference runs in two workers (up to a full-HD "
        "frame / larger), each model call on its calling thread (ONNX Runtime and OpenCV on one thread); live "
        "frames beyond 4:1 are refused from the header, and only `ws_frames_in_flight` frames (half the cores) "
        "are decoded or analysed at once, ahead of the last second's photos, the others waiting undecoded; "
        "batches of small images hold at most a megapixel; a client that leaves loses its place. The photo "
        "latency is the server's own `elapsed_ms` plus the network: when they match, the time is spent inside "
        "the server.",
        "",
    ]


def report(run: Run, command: str, storm_limit: float) -> tuple[str, bool]:
    """The Markdown report and whether every target was met."""
    cpu = cpu_name()
    targets = targets_of(run)
    lines = [
        "# Abuse benchmark: hostile inputs against `emoscope serve` on loopback",
        "",
        f"Command: `{command.strip()}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} CPU cores ({cpu}), shared with "
        f"other jobs (1-minute load average {run.load[0]:.1f} at the start, {run.load[1]:.1f} at the end); "
        f"Python {platform.python_version()}. Server: `emoscope serve` defaults (shipped model), "
        f"RSS {run.rss_start:.0f} MiB after start and one photo.",
        "",
        "## Targets",
        "",
        "| target | met | measured |",
        "|---|---|---|",
        *(f"| {t} | {'yes' if ok else '**no**'} | {m} |" for t, ok, m in targets),
        "",
    ]
    if run.rows:
        lines += [
            "## Hostile inputs, one at a time",
            "",
            "| input | answer | as expected | seconds | server RSS after (MiB) |",
            "|---|---|---|---:|---:|",
            *(
                f"| {r.name} | {r.status.replace('|', '/')} | {'yes' if r.ok else '**no**'} | {r.seconds:.2f} | "
                f"{r.rss_mib:.0f} |"
                for r in run.rows
            ),  # fmt: skip
            "",
        ]
    if run.storm is not None:
        lines += storm_lines(run.storm, run.peak, storm_limit)
    tb = first_traceback(run.server_err)
    if tb:
        print(tb, file=sys.stderr)
        lines += ["## First traceback in the server log", "", "```", tb, "```", ""]
    return "\n".join(lines), all(ok for _, ok, _ in targets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("all", "hostile", "storm"), default="all",
                    help="run only the hostile inputs or only the storm (default: both)")  # fmt: skip
    ap.add_argument(
        "--out", default=None, help=f"report file, '-' for none (default: {DEFAULT_OUT} for a full run, none otherwise)"
    )
    ap.add_argument("--storm-limit", type=float, default=120.0, help="seconds the 16 uploads may take (default 120)")
    args = ap.parse_args(argv)
    out = args.out or (str(DEFAULT_OUT) if args.only == "all" else "-")
    command = "python benchmarks/abuse.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    run = run_all(args.only, args.storm_limit)
    text, ok = report(run, command, args.storm_limit)
    print(text)
    if out != "-":
        Path(out).write_text(text)
        print(f"written to {out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
