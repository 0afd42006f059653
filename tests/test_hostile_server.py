"""The real server (uvicorn in a subprocess on 127.0.0.1, a free port) against the hostile requests of issue 25.

The app runs with the same uvicorn options as ``emoscope serve`` (``server/serving.py``) and a fake recognizer,
so only the server is under test. Raw sockets check what the in-process client cannot: keep-alive after a
refusal, pipelining, half-open connections, oversized request heads; ``emoscope serve`` on a busy port must
not create its database.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'emoscope[web]'")
websockets_sync = pytest.importorskip("websockets.sync.client")

HERE = Path(__file__).resolve().parent
HEADER_TIMEOUT = 1.0

LAUNCHER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_server import FakeRecognizer
    from emoscope.mood import MoodStore
    from emoscope.server import ServerSettings, create_app
    from emoscope.server.serving import bind, serve

    s = ServerSettings(port=0, header_timeout={timeout!r}, ws_max_fps=1000, sample_interval=0.0)
    sock = bind("127.0.0.1", 0)
    store = MoodStore({db!r})
    print(sock.getsockname()[1], flush=True)
    serve(create_app(s, recognizer=FakeRecognizer(), store=store), s, sock, log_level="warning")
""")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(port, database path, process) of a running server; stopped after the module."""
    db = tmp_path_factory.mktemp("hostile") / "mood.db"
    code = LAUNCHER.format(tests=str(HERE), timeout=HEADER_TIMEOUT, db=str(db))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        pytest.fail(f"server did not start: {line} {proc.stderr.read()[-2000:]}")
    port = int(line)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    yield port, db, proc
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    assert "Traceback" not in err, err[-3000:]


def jpeg(w: int = 64, h: int = 48) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (30, 120, 200)
    return cv2.imencode(".jpg", img)[1].tobytes()


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        c.close()


def test_cross_site_post_is_refused_on_the_wire(server):
    port, db, _ = server
    status, body, _ = request(port, "POST", "/api/v1/analyze?log=true", jpeg(),
                              {"Origin": "https://evil.example", "Content-Type": "text/plain"})  # fmt: skip
    assert status == 403 and json.loads(body)["error"]["code"] == "cross_site"
    status, body, _ = request(port, "POST", "/api/v1/analyze?log=true", jpeg(), {"Content-Type": "image/jpeg"})
    assert status == 200 and json.loads(body)["logged"] == 1  # a non-browser client still logs


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/mood?from=1e20",
        "/api/v1/mood?from=-1e20",
        "/api/v1/mood?from=inf",
        "/api/v1/mood?to=" + "9" * 55,
        "/api/v1/mood.csv?from=1e20",
        "/api/v1/mood.csv?to=-1e20",
        "/api/v1/mood?bucket=day&from=0001-01-01",
        "/api/v1/captures/99999999999999999999",
    ],
)
def test_bad_values_are_4xx_and_keep_the_connection(server, path):
    """Each refusal comes back as JSON, and a request pipelined behind it on the same connection is answered."""
    port = server[0]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = "Host: 127.0.0.1\r\n"
        s.sendall(f"GET {path} HTTP/1.1\r\n{head}\r\nGET /api/v1/health HTTP/1.1\r\n{head}\r\n".encode())
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"HTTP/1.1 ") < 2 and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.split()[1] in (b"404", b"422"), data[:500]
    assert b"HTTP/1.1 200" in rest, "the pipelined request was lost"
    assert b"Traceback" not in data


def test_delete_of_a_huge_capture_id_is_4xx(server):
    status, body, _ = request(server[0], "DELETE", "/api/v1/captures/99999999999999999999")
    assert status == 422 and json.loads(body)["error"]["message"]


def test_nested_json_on_the_stream_is_a_clear_error_and_a_normal_close(server):
    url = f"ws://127.0.0.1:{server[0]}/api/v1/stream"
    with websockets_sync.connect(url, origin=None) as ws:
        assert json.loads(ws.recv())["type"] == "hello"
        ws.send("[" * 2048 + "]" * 2048)
        err = json.loads(ws.recv())
        assert err["type"] == "error" and err["error"]["status"] == 422
        strip = cv2.imencode(".png", np.zeros((1, 5000, 3), np.uint8))[1].tobytes()
        ws.send(strip)
        assert json.loads(ws.recv())["error"]["code"] == "extreme_aspect"
        ws.send(jpeg())
        assert json.loads(ws.recv())["type"] == "faces"
    assert ws.close_code == 1000


def test_cross_site_websocket_is_refused(server):
    from websockets.exceptions import InvalidStatus

    url = f"ws://127.0.0.1:{server[0]}/api/v1/stream"
    with pytest.raises(InvalidStatus) as refused, websockets_sync.connect(url, origin="https://evil.example"):
        pass
    assert refused.value.response.status_code == 403


def test_half_open_connections_are_closed(server):
    """Connections that never finish their request head are closed after the header timeout."""
    port = server[0]
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    for i, s in enumerate(socks):
        if i % 2:
            s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0")  # half a request head
    t0 = time.monotonic()
    for s in socks:
        data = s.recv(1024)  # returns when the server closes (b"") or answers 408
        assert data in (b"",) or data.startswith(b"HTTP/1.1 408"), data
        s.close()
    assert time.monotonic() - t0 < HEADER_TIMEOUT + 5
    assert request(port, "GET", "/api/v1/health")[0] == 200  # the server still answers


def test_oversized_request_head_is_refused(server):
    port = server[0]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        answer = b""
        try:
            for _ in range(160):  # up to 10 MB, stopped as soon as the server refuses
                s.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = s.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert request(port, "GET", "/api/v1/health")[0] == 200


def test_health_shows_no_database_path(server):
    port, db, _ = server
    status, body, _ = request(port, "GET", "/api/v1/health")
    assert status == 200 and str(db.parent) not in body.decode() and json.loads(body)["mood"]["db"] == "sqlite"


def test_serve_on_a_busy_port_creates_no_database(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    db = tmp_path / "new" / "mood.db"
    env = {**os.environ, "EMOSCOPE_DATA_DIR": str(tmp_path / "data")}
    try:
        out = subprocess.run([sys.executable, "-m", "emoscope", "serve", "--port", str(port), "--db", str(db)],
                             capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    finally:
        busy.close()
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and f"{port}" in out.stderr and "--port" in out.stderr
    assert not db.exists() and not db.parent.exists()
