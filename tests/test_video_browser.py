"""The annotated video plays in a real browser: Chromium (Debian's, driven by Playwright) loads the H.264 .mp4
and the VP9 .webm that ``run_video`` writes, decodes pictures with the boxes drawn, plays forward, and
decodes the copied sound. Skips with a message when Playwright or Chromium is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from emoscope.recognizer import Recognizer
from emoscope.video import open_source, run_video
from test_video import _frames, write_clip

CHROMIUM = os.environ.get("EMOSCOPE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
pytest.importorskip("av", reason="PyAV is not installed: pip install 'emoscope[video]'")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set EMOSCOPE_CHROMIUM)",
                allow_module_level=True)

PAGE = """<!doctype html><html><body style="margin:0;background:#000">
<video id="v" muted playsinline preload="auto" src="{src}"></video>
<canvas id="c"></canvas></body></html>"""

PROBE = """async () => {
  const v = document.getElementById('v');
  if (v.readyState < 2) await new Promise((ok, bad) => {
    v.addEventListener('loadeddata', ok, {once: true});
    v.addEventListener('error', () => bad(new Error('media error ' + (v.error && v.error.code))), {once: true});
  });
  await v.play();
  await new Promise(ok => setTimeout(ok, 600));
  v.pause();
  const c = document.getElementById('c');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const px = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, colour = 0;
  for (let i = 0; i < px.length; i += 4) {
    sum += px[i] + px[i + 1] + px[i + 2];
    colour += Math.abs(px[i] - px[i + 1]) + Math.abs(px[i + 1] - px[i + 2]) > 60 ? 1 : 0;
  }
  return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime, duration: v.duration,
          mean: sum / (px.length / 4) / 3, colourful: colour / (px.length / 4),
          audioBytes: v.webkitAudioDecodedByteCount, error: v.error && v.error.code};
}"""


@pytest.fixture(scope="module")
def annotated(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("browser_video")
    frames = list(_frames(10)) * 2  # 20 frames at 8 frames/s: 2.5 s
    src = write_clip(tmp / "source.mp4", frames, audio=True)
    rec = Recognizer(backend="torch")
    out = {}
    for suffix in (".mp4", ".webm"):
        out[suffix] = tmp / f"annotated{suffix}"
        run_video(open_source(src), rec, out=out[suffix])
    return out


@pytest.fixture(scope="module")
def browser():
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
            "--allow-file-access-from-files", "--no-first-run", "--disable-component-update"]
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_annotated_video_plays_in_chromium(annotated, browser, suffix, tmp_path):
    video = annotated[suffix]
    page_path = tmp_path / "play.html"
    page_path.write_text(PAGE.format(src=video.as_uri()))
    page = browser.new_page()
    try:
        page.goto(page_path.as_uri())
        got = page.evaluate(PROBE)
    finally:
        page.close()
    assert got["error"] is None and (got["w"], got["h"]) == (480, 360), got
    assert got["duration"] == pytest.approx(2.5, abs=0.2) and got["t"] > 0.2, got  # it played forward
    assert 20 < got["mean"] < 235 and got["colourful"] > 0.001, got  # a real picture with coloured boxes/bars
    assert got["audioBytes"] > 0, got  # the copied sound decodes too
