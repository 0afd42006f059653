"""End to end in a real browser: Debian's Chromium, driven by Playwright, against ``emoscope serve`` in a subprocess.

The fake camera plays a Y4M file made from ``skimage.data.astronaut()`` (a real smiling face). The test checks
that a box and label appear over the video, that a photo upload shows a result, that mood rows are written
and the dashboard shows them, and that acknowledged rows survive ``kill -9`` of the server. Screenshots are
saved under ``tests/artifacts/`` (or ``$EMOSCOPE_TEST_ARTIFACTS``). The shipped model may be a placeholder,
so which emotion wins is not checked.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

CHROMIUM = os.environ.get("EMOSCOPE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("EMOSCOPE_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install 'emoscope[web]'")
if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set EMOSCOPE_CHROMIUM)",
                allow_module_level=True)  # fmt: skip

from emoscope.mood import MoodStore  # noqa: E402
from emoscope.samples import astronaut_bgr  # noqa: E402


def write_y4m(path: Path, frames: int = 10, width: int = 640, height: int = 480) -> Path:
    """A YUV4MPEG2 clip (4:2:0) of the astronaut photo, centred on gray: Chromium's fake camera loops it."""
    face = cv2.resize(astronaut_bgr(), (height, height), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 96, np.uint8)
    x0 = (width - height) // 2
    canvas[:, x0 : x0 + height] = face
    i420 = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420)  # Y plane, then U, then V
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            fh.write(b"FRAME\n")
            fh.write(i420.tobytes())
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(request, tmp_path):
    """``emoscope serve`` on a free loopback port with its own mood database; yields (url, db path, process).

    Parametrize indirectly with a token to start it with ``EMOSCOPE_TOKEN`` set.
    """
    token = getattr(request, "param", None)
    port = free_port()
    db = tmp_path / "mood.sqlite3"
    env = {**os.environ, "EMOSCOPE_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("EMOSCOPE_TOKEN", None)
    if token:
        env["EMOSCOPE_TOKEN"] = token
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "emoscope", "serve", "--port", str(port), "--db", str(db), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + 120
    while True:
        try:
            req = urllib.request.Request(f"{url}/api/v1/health", headers=headers)
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
        time.sleep(0.3)
    yield url, db, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def browser(tmp_path):
    clip = write_y4m(tmp_path / "astronaut.y4m")
    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}",
    ]  # fmt: skip
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield b
        finally:
            b.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"browser-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def overlay_ink(page) -> int:
    """Number of drawn (non-transparent) pixels on the canvas over the video."""
    return page.evaluate(
        """() => {
            const c = document.getElementById('live-overlay');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n;
        }"""
    )


def test_live_photo_and_dashboard_in_chromium(server, browser, tmp_path):
    url, db, proc = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.goto(url + "/")
    page.get_by_role("tab", name="Live").wait_for()

    # 1) live: camera -> WebSocket -> tracked faces drawn over the video, label and bars in the side list
    page.get_by_role("button", name="Start camera").click()
    card = page.locator("#live-faces .face-card").first
    card.wait_for(timeout=60_000)
    title = card.locator("h4").inner_text()
    assert title.startswith("Face #") and title.split(": ")[1] in (
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fmt: skip
    assert card.locator(".bars .bar").count() == 7
    page.wait_for_function("() => live.last && live.last.faces.length > 0 && live.frameTimes.length > 1")
    face = page.evaluate("() => live.last.faces[0]")
    assert set(face) >= {"track_id", "box", "probs", "smoothed", "label"} and len(face["box"]) == 4
    assert overlay_ink(page) > 500, "nothing drawn over the video"
    # mood rows are sampled once per second per track: wait for a few acknowledged ones
    page.wait_for_function("() => live.logged >= 3", timeout=60_000)
    fps = float(page.locator("#live-fps").inner_text())
    assert fps > 0
    shot(page, "live")

    # 2) photo: file picker -> annotated result + per-face bars
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), astronaut_bgr())
    page.get_by_role("tab", name="Photo").click()
    page.get_by_label("Log to mood diary").nth(1).check()
    page.set_input_files("#photo-file", str(photo))
    page.locator("#photo-result").wait_for(state="visible", timeout=60_000)
    assert page.get_attribute("#photo-img", "src").startswith("data:image/jpeg;base64,")
    assert page.locator("#photo-faces .face-card").count() >= 1
    assert "512×512 JPEG" in page.locator("#photo-caption").inner_text()
    shot(page, "photo")

    # 3) dashboard shows the rows just written
    page.get_by_role("tab", name="Mood").click()
    page.wait_for_function("() => /mood rows/.test(document.getElementById('mood-summary').textContent)")
    summary = page.locator("#mood-summary").inner_text()
    assert summary.startswith("Today: ") and int(summary.split()[1]) >= 4
    assert page.locator("#chart-timeline svg rect title").count() >= 1  # at least one minute with data
    assert page.locator("#chart-days svg rect title").count() >= 1
    shot(page, "mood")

    # 4) smiles gallery: empty (smile capture was off), then one capture (written straight to the database,
    # since the placeholder model may never call the face happy), then deleted from the page
    page.get_by_role("tab", name="Smiles").click()
    page.locator("#gallery li").first.wait_for()
    assert page.locator("#gallery img").count() == 0
    with MoodStore(db) as st:
        st.add_capture(cv2.imencode(".jpg", astronaut_bgr())[1].tobytes(), 512, 512, 1, session="test")
    page.get_by_role("button", name="Refresh").last.click()
    page.locator("#gallery img").first.wait_for()
    assert page.locator("#gallery img").get_attribute("src").startswith("blob:")
    shot(page, "smiles")
    page.get_by_role("button", name="Delete capture", exact=False).click()
    page.get_by_text("No captures yet.").wait_for()

    acked = page.evaluate("() => live.logged")
    assert not [e for e in console_errors if "favicon" not in e], console_errors

    # 5) durability: kill -9 the server; every acknowledged row is in the database
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with MoodStore(db) as st:
        live_rows = sum(1 for r in st.rows() if r["source"] == "live")
        photo_rows = sum(1 for r in st.rows() if r["source"] == "photo")
    assert live_rows >= acked >= 3
    assert photo_rows >= 1


TOKEN = "browser-test-token-0123456789"


@pytest.mark.parametrize("server", [TOKEN], indirect=True)
def test_token_dialog_and_websocket_token_in_chromium(server, browser):
    """With a token, the page asks for it once, then the API and the WebSocket (sub-protocol) both work."""
    url, db, _ = server
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(url + "/")
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    page.wait_for_function("() => /emoscope/.test(document.getElementById('server-info').textContent)")
    page.get_by_role("button", name="Start camera").click()
    page.locator("#live-faces .face-card").first.wait_for(timeout=60_000)
    page.wait_for_function("() => live.logged >= 1", timeout=60_000)
    # keyboard: arrows move between tabs
    page.get_by_role("tab", name="Live").focus()
    page.keyboard.press("ArrowRight")
    assert page.get_by_role("tab", name="Photo").get_attribute("aria-selected") == "true"
    assert page.locator("#panel-photo").is_visible() and not page.locator("#panel-live").is_visible()
    page.keyboard.press("End")
    assert page.get_by_role("tab", name="Smiles").get_attribute("aria-selected") == "true"
    with MoodStore(db) as st:
        assert st.count() >= 1


def test_api_docs_render_offline_in_chromium(server, browser):
    """/api/docs draws the API's operations with every request outside this server refused (no CDN)."""
    url, _, _ = server
    page = browser.new_page()
    outside: list[str] = []

    def route(r):
        if r.request.url.startswith(url):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url + "/api/docs")
    page.locator(".opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock").count() >= 5
    assert "/api/v1/analyze" in page.content()
    assert outside == []


def test_y4m_writer(tmp_path):
    p = write_y4m(tmp_path / "x.y4m", frames=2, width=64, height=48)
    raw = p.read_bytes()
    header = b"YUV4MPEG2 W64 H48 F10:1 Ip A1:1 C420jpeg\n"
    assert raw.startswith(header) and len(raw) == len(header) + 2 * (6 + 64 * 48 * 3 // 2)


def test_chromium_is_usable():
    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "Chromium" in out.stdout, out.stderr
    assert shutil.which("python") or sys.executable
