"""Bounded loopback load test of ``emoscope serve``: photo uploads and live WebSocket streams at once.

Starts the server on a free 127.0.0.1 port (own temporary mood database), then for ``--duration`` seconds runs
``--clients`` concurrent clients posting real face photos (variants of ``skimage.data.astronaut()``) to
``/api/v1/analyze?log=1`` and ``--streams`` WebSocket streams sending 480x360 JPEG frames (one in flight each,
as the page does). Reports requests/s, latency p50/p95/p99, errors (must be 0) and the server's memory
before and after, and writes them with the command into ``benchmarks/LOAD.md``. Traffic goes to loopback only;
every loop stops at the deadline.

    python benchmarks/load.py                      # 20 clients + 5 streams for 30 s
    python benchmarks/load.py --duration 5 --out -  # quick look, print only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from machine import cpu_name


def photo_variants() -> list[bytes]:
    """A few JPEGs of a real face: the astronaut photo as is, mirrored, brighter, cropped and smaller."""
    from skimage import data

    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    variants = [
        img,
        img[:, ::-1],
        cv2.convertScaleAbs(img, alpha=1.15, beta=12),
        img[0:320, 60:380],
        cv2.resize(img, (384, 384), interpolation=cv2.INTER_AREA),
    ]
    quality = [cv2.IMWRITE_JPEG_QUALITY, 90]
    return [cv2.imencode(".jpg", np.ascontiguousarray(v), quality)[1].tobytes() for v in variants]


def stream_frame() -> bytes:
    """One live frame as the page sends it: 480x360 JPEG, quality 75, face in the middle."""
    from skimage import data

    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (360, 360), interpolation=cv2.INTER_AREA)
    frame = np.full((360, 480, 3), 96, np.uint8)
    frame[:, 60:420] = face
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()


def rss_kib(pid: int) -> dict[str, int]:
    """Resident memory (VmRSS) and its peak (VmHWM) of a process, in KiB (Linux /proc)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, val = line.split(":", 1)
                out[key] = int(val.split()[0])
    except OSError:
        pass
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    a = np.asarray(xs) * 1000
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}  # fmt: skip


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    faces: int = 0


async def photo_client(client, url: str, photos: list[bytes], deadline: float, tally: Tally, k: int) -> None:
    i = k
    while time.monotonic() < deadline:
        data = photos[i % len(photos)]
        i += 1
        t0 = time.monotonic()
        try:
            r = await client.post(f"{url}/api/v1/analyze?log=1", files={"file": ("face.jpg", data, "image/jpeg")})
            dt = time.monotonic() - t0
            if r.status_code != 200:
                tally.errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                continue
            body = r.json()
            tally.faces += len(body["faces"])
            if not body["faces"]:
                tally.errors.append("no face found in a face photo")
            tally.latencies.append(dt)
        except Exception as exc:  # count, don't crash the run
            tally.errors.append(f"{type(exc).__name__}: {exc}")


async def stream_client(ws_url: str, frame: bytes, deadline: float, tally: Tally) -> None:
    import json

    from websockets.asyncio.client import connect

    try:
        async with connect(ws_url, subprotocols=["emoscope"], max_size=2**22, open_timeout=30) as ws:
            hello = json.loads(await ws.recv())
            min_gap = 1.0 / float(hello["limits"]["max_fps"])
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                await ws.send(frame)
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
                dt = time.monotonic() - t0
                if msg["type"] != "faces":
                    tally.errors.append(f"stream: {msg}")
                else:
                    tally.latencies.append(dt)
                    tally.faces += len(msg["faces"])
                await asyncio.sleep(max(0.0, min_gap - (time.monotonic() - t0)))  # stay under the fps cap
    except Exception as exc:
        tally.errors.append(f"stream {type(exc).__name__}: {exc}")


async def run_load(url: str, clients: int, streams: int, duration: float) -> tuple[Tally, Tally, float]:
    try:
        import httpx2 as httpx
    except ImportError:
        import httpx

    photos = photo_variants()
    frame = stream_frame()
    photo_tally, stream_tally = Tally(), Tally()
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for p in photos[:2]:  # warm-up (first inference allocates)
            (await client.post(f"{url}/api/v1/analyze", files={"file": ("w.jpg", p, "image/jpeg")})).raise_for_status()
        t0 = time.monotonic()
        deadline = t0 + duration
        ws_url = url.replace("http://", "ws://") + "/api/v1/stream"
        tasks = [photo_client(client, url, photos, deadline, photo_tally, k) for k in range(clients)]
        tasks += [stream_client(ws_url, frame, deadline, stream_tally) for _ in range(streams)]
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - t0
    return photo_tally, stream_tally, elapsed


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not become ready")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    ap.add_argument("--clients", type=int, default=20, help="concurrent photo clients (default 20)")
    ap.add_argument("--streams", type=int, default=5, help="concurrent WebSocket streams (default 5)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("LOAD.md")), help="report file, '-' for none")
    ap.add_argument("--serve-args", default="", help="extra flags for `emoscope serve` (e.g. '--backend onnx')")
    args = ap.parse_args(argv)
    if args.duration <= 0 or args.duration > 600:
        ap.error("--duration must be in (0, 600] seconds")

    command = "python benchmarks/load.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "emoscope", "serve", "--port", str(port), "--db", f"{tmp}/mood.sqlite3",
               "--log-level", "warning", *shlex.split(args.serve_args)]  # fmt: skip
        env = {**os.environ, "EMOSCOPE_DATA_DIR": tmp}
        env.pop("EMOSCOPE_TOKEN", None)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_ready(url, proc)
            mem_before = rss_kib(proc.pid)
            photo, stream, elapsed = asyncio.run(run_load(url, args.clients, args.streams, args.duration))
            mem_after = rss_kib(proc.pid)
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=10) as r:
                import json

                rows = json.loads(r.read())["mood"]["rows"]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    p_lat, s_lat = percentiles(photo.latencies), percentiles(stream.latencies)
    errors = len(photo.errors) + len(stream.errors)
    cpu = cpu_name()
    lines = [
        "# Load benchmark: `emoscope serve` on loopback",
        "",
        f"Command: `{command.strip()}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} CPU cores ({cpu}), "
        f"Python {platform.python_version()}; server flags: `{args.serve_args or '(defaults)'}`",
        "",
        f"Load: {args.clients} concurrent clients posting face photos (`/api/v1/analyze?log=1`, 5 astronaut "
        f"variants, 320-512 px) and {args.streams} WebSocket streams (480x360 JPEG, one frame in flight, "
        f"at most the server's fps cap) for {elapsed:.1f} s.",
        "",
        "| traffic | completed | per second | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| photos (HTTP) | {len(photo.latencies)} | {len(photo.latencies) / elapsed:.2f} | {p_lat['p50']:.0f} | "
        f"{p_lat['p95']:.0f} | {p_lat['p99']:.0f} | {p_lat['max']:.0f} | {len(photo.errors)} |",
        f"| live frames (WS) | {len(stream.latencies)} | {len(stream.latencies) / elapsed:.2f} | {s_lat['p50']:.0f} | "
        f"{s_lat['p95']:.0f} | {s_lat['p99']:.0f} | {s_lat['max']:.0f} | {len(stream.errors)} |",
        "",
        f"Server memory (RSS): {mem_before.get('VmRSS', 0) / 1024:.0f} MiB before (after start and 2 warm-up "
        f"photos), {mem_after.get('VmRSS', 0) / 1024:.0f} MiB after; peak {mem_after.get('VmHWM', 0) / 1024:.0f} MiB.",
        f"Mood rows written during the run: {rows}. Faces found: {photo.faces} in photos, {stream.faces} in frames.",
        "",
        f"Errors: {errors}" + (" — first ones: " + "; ".join((photo.errors + stream.errors)[:5]) if errors else ""),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out != "-":
        Path(args.out).write_text(report)
        print(f"written to {args.out}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
