"""Make the pictures the README and docs/GUIDE.md show, from the real commands (nothing drawn by hand).

    python tools/make_docs_pictures.py            # both pictures
    python tools/make_docs_pictures.py photo      # docs/images/annotated_example.jpg
    python tools/make_docs_pictures.py page       # docs/images/web_page.jpg (needs Chromium and Playwright)

``photo`` runs ``emoscope predict --example --annotate DIR`` (the shipped model on skimage's astronaut photo) and
keeps its output as a JPEG. ``page`` starts ``emoscope serve`` on a free 127.0.0.1 port with a throw-away mood
database, opens the page in headless Chromium (``EMOSCOPE_CHROMIUM``, default ``/usr/bin/chromium``; Playwright
downloads nothing), uploads the same photo in the Photo tab and takes a screenshot.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
CHROMIUM = os.environ.get("EMOSCOPE_CHROMIUM", "/usr/bin/chromium")


def _save_jpeg(src: Path, dst: Path, quality: int = 85) -> Path:
    """Re-encode a picture as a JPEG (keeps the repository small)."""
    from PIL import Image

    dst.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as im:
        im.convert("RGB").save(dst, "JPEG", quality=quality, optimize=True)
    return dst


def make_photo(out: Path = IMAGES / "annotated_example.jpg") -> Path:
    """``emoscope predict --example --annotate``'s picture, as a JPEG at ``out``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "emoscope", "predict", "--example", "--annotate", tmp]
        print("$", " ".join(["emoscope", *cmd[3:-1], "DIR"]))
        subprocess.run(cmd, check=True)
        (picture,) = Path(tmp).glob("*.png")
        return _save_jpeg(picture, out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"emoscope serve did not start (exit status {proc.poll()})")
        time.sleep(0.3)


def make_page(out: Path = IMAGES / "web_page.jpg", width: int = 1280, height: int = 860) -> Path:
    """A screenshot of the web page's Photo tab after uploading the astronaut photo."""
    import cv2
    from playwright.sync_api import sync_playwright

    from emoscope.samples import astronaut_bgr

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        photo = tmp / "astronaut.jpg"
        cv2.imwrite(str(photo), astronaut_bgr())
        port = _free_port()
        env = {**os.environ, "EMOSCOPE_DATA_DIR": str(tmp)}
        env.pop("EMOSCOPE_TOKEN", None)
        cmd = [sys.executable, "-m", "emoscope", "serve", "--port", str(port), "--db", str(tmp / "mood.sqlite3"),
               "--log-level", "warning"]
        print("$ emoscope serve --port", port)
        with (tmp / "server.log").open("w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_for(url, proc)
                with sync_playwright() as pw:
                    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
                    page = browser.new_page(viewport={"width": width, "height": height}, color_scheme="light")
                    page.goto(url)
                    page.get_by_role("tab", name="Photo").click()
                    page.set_input_files("#photo-file", str(photo))
                    page.locator("#photo-result").wait_for(state="visible", timeout=120_000)
                    page.wait_for_timeout(500)  # let the boxes settle over the photo
                    shot = tmp / "page.png"
                    page.screenshot(path=str(shot))
                    browser.close()
                return _save_jpeg(shot, out)
            finally:
                proc.terminate()
                proc.wait(timeout=20)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("which", nargs="?", choices=["photo", "page", "all"], default="all",
                   help="which picture to make (default: all)")
    args = p.parse_args(argv)
    if args.which in ("photo", "all"):
        print("wrote", make_photo().relative_to(REPO))
    if args.which in ("page", "all"):
        print("wrote", make_page().relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
