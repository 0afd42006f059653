"""Hostile and broken inputs to the web API, in-process: each test fails on the server before issue 25's fixes.

Cross-site requests, out-of-range query values, huge ids, a full disk, deeply nested stream messages,
extreme-aspect frames and the decode budget. Hypothesis drives the query parameters: whatever they are,
the answer is a JSON 2xx/4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'emoscope[web]'")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from starlette.testclient import WebSocketDenialResponse  # noqa: E402

from emoscope.mood import MoodStore  # noqa: E402
from emoscope.server import media  # noqa: E402
from emoscope.server.decoding import ByteBudget, Decoder  # noqa: E402
from emoscope.server.guards import cross_site_reason  # noqa: E402
from test_server import (  # noqa: E402
    WS,
    FakeRecognizer,
    GatedRecorder,
    assert_error,
    assert_ws_error,
    jpeg,
    make_client,
    png,
    post_photo,
)

EVIL = {"Origin": "https://evil.example"}


@pytest.fixture
def store(tmp_path):
    s = MoodStore(tmp_path / "mood.db")
    yield s
    s.close()


class ShapeRecorder(FakeRecognizer):
    """The fake recognizer, remembering the shape of every image it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

        self.last: np.ndarray | None = None

    def predict_arrays(self, arrays):
        self.shapes += [a.shape for a in arrays]
        self.last = arrays[-1]
        return super().predict_arrays(arrays)


# ------------------------------------------------------------------------------------ cross-site requests


def test_cross_site_writes_are_refused_and_write_nothing(store):
    with make_client(store) as c:
        r = c.post("/api/v1/analyze?log=true", content=jpeg(), headers={**EVIL, "Content-Type": "text/plain"})
        assert_error(r, 403, "cross_site")
        r = c.post("/api/v1/analyze?log=true", content=jpeg(), headers={"Sec-Fetch-Site": "cross-site"})
        assert_error(r, 403, "cross_site")
        assert store.count() == 0
        cid = store.add_capture(jpeg(), 64, 48, 1)
        assert_error(c.delete(f"/api/v1/captures/{cid}", headers=EVIL), 403, "cross_site")
        assert_error(c.delete(f"/api/v1/captures/{cid}", headers={"Sec-Fetch-Site": "same-site"}), 403)
        assert store.get_capture(cid) is not None
        # the page's own requests, typed addresses and non-browser clients still work
        own = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}
        assert c.post("/api/v1/analyze?log=true", content=jpeg(), headers=own).json()["logged"] == 1
        assert c.get("/api/v1/health", headers={"Sec-Fetch-Site": "none"}).status_code == 200
        assert c.delete(f"/api/v1/captures/{cid}").status_code == 204


def test_cross_site_reads_are_refused(store):
    cid = store.add_capture(jpeg(), 64, 48, 1)
    with make_client(store) as c:
        for path in ("/api/v1/mood", "/api/v1/mood.csv", "/api/v1/captures", f"/api/v1/captures/{cid}",
                     "/api/v1/health"):  # fmt: skip
            r = c.get(path, headers=EVIL)
            assert_error(r, 403, "cross_site")
            assert "access-control-allow-origin" not in r.headers
            # an <img> or <script> from another site carries no Origin, only Sec-Fetch-Site
            assert_error(c.get(path, headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"}), 403)
            assert_error(c.get(path, headers={"Origin": "null"}), 403)
        ok = c.get(f"/api/v1/captures/{cid}")
        assert ok.status_code == 200 and ok.headers["cross-origin-resource-policy"] == "same-origin"
        with (
            pytest.raises(WebSocketDenialResponse) as denied,
            c.websocket_connect(WS, headers={"Sec-Fetch-Site": "cross-site"}),
        ):
            pass
        assert denied.value.status_code == 403


def test_allowed_origins_still_work(store):
    with make_client(store, cors_origins=["http://app.example"]) as c:
        allowed = {"Origin": "http://app.example", "Sec-Fetch-Site": "cross-site"}
        r = c.get("/api/v1/mood", headers=allowed)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://app.example"
        assert_error(c.get("/api/v1/mood", headers=EVIL), 403)


def test_cross_site_reason_rules():
    host = {"host": "127.0.0.1:8000"}
    assert cross_site_reason({**host, "origin": "http://127.0.0.1:8000"}) is None
    assert cross_site_reason({"host": "localhost", "origin": "http://localhost:80"}) is None
    assert cross_site_reason({**host, "origin": "http://127.0.0.1:3000"})  # another port is another program
    assert cross_site_reason({**host, "origin": "http://127.0.0.1:8000.evil.example"})
    assert cross_site_reason({**host, "origin": "https://evil.example"}, ["https://evil.example"]) is None
    assert cross_site_reason(host) is None and cross_site_reason({**host, "sec-fetch-site": "none"}) is None
    assert cross_site_reason({**host, "sec-fetch-site": "same-site"})


# ------------------------------------------------------------------------------------ query parameters

BAD_TIMES = ["1e20", "-1e20", "inf", "-inf", "nan", "9" * 55, "-" + "9" * 55, "0001-01-01", "9999-12-31T23:59:59"]


@pytest.mark.parametrize("value", BAD_TIMES)
def test_out_of_range_times_are_clear_422s(client_factory, value):
    c = client_factory()
    for path in ("/api/v1/mood", "/api/v1/mood.csv"):
        for name in ("from", "to"):
            assert_error(c.get(path, params={name: value}), 422, "bad_time")
    assert_error(c.get("/api/v1/mood", params={"bucket": "day", "from": value}), 422, "bad_time")


@pytest.fixture
def client_factory(store):
    clients = []

    def make(**settings):
        c = make_client(store, **settings)
        clients.append(c.__enter__())
        return clients[-1]

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_huge_capture_ids_are_4xx_not_500(client_factory):
    c = client_factory()
    for method in (c.get, c.delete):
        for cid in ("99999999999999999999", str(2**63), "-1", "0"):
            assert_error(method(f"/api/v1/captures/{cid}"), 422, "invalid_input")
        assert_error(method(f"/api/v1/captures/{2**63 - 1}"), 404, "not_found")


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    start=st.one_of(st.none(), st.text(max_size=30), st.floats(allow_nan=True).map(repr), st.integers().map(str)),
    end=st.one_of(st.none(), st.text(max_size=30), st.integers(min_value=-(10**30), max_value=10**30).map(str)),
    bucket=st.sampled_from(["minute", "hour", "day", "week", "", "DAY"]),
    tz=st.one_of(st.integers(min_value=-2000, max_value=2000).map(str), st.text(max_size=5)),
    source=st.one_of(st.none(), st.text(max_size=20)),
)
def test_mood_parameters_never_500(hyp_client, start, end, bucket, tz, source):
    params = {k: v for k, v in {"from": start, "to": end, "bucket": bucket, "tz_offset": tz,
                                "source": source}.items() if v is not None}  # fmt: skip
    for path in ("/api/v1/mood", "/api/v1/mood.csv"):
        r = hyp_client.get(path, params=params)
        assert r.status_code in (200, 422), (params, r.status_code, r.text[:300])
        if r.status_code == 422:
            assert r.json()["error"]["message"]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    cid=st.one_of(st.integers(), st.text(min_size=1, max_size=25).filter(str.isprintable)),
    limit=st.one_of(st.integers(), st.text(max_size=6)),
)
def test_capture_parameters_never_500(hyp_client, cid, limit):
    path = "/api/v1/captures/" + str(cid).replace("/", "_").replace("?", "_").replace("#", "_")
    for r in (
        hyp_client.get(path),
        hyp_client.delete(path),
        hyp_client.get("/api/v1/captures", params={"limit": limit}),
    ):
        assert r.status_code in (200, 204, 404, 405, 422), (cid, limit, r.status_code, r.text[:300])


@pytest.fixture(scope="module")
def hyp_client(tmp_path_factory):
    """One client for all Hypothesis examples (function-scoped fixtures are not reset between examples)."""
    st_ = MoodStore(tmp_path_factory.mktemp("hyp") / "mood.db")
    st_.log("live", {"happy": 1.0})
    st_.add_capture(jpeg(), 64, 48, 1)
    with make_client(st_) as c:
        yield c
    st_.close()


# ------------------------------------------------------------------------------------ full disk


def fill_up(store: MoodStore) -> None:
    """Make the SQLite file unable to grow, then write until it is full (SQLITE_FULL: 'database or disk is full')."""
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    @sa.event.listens_for(store.engine, "connect")
    def _cap(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA max_page_count={pages}")
        cur.close()

    store.engine.dispose()
    with pytest.raises(sa.exc.OperationalError, match="full"):
        for _ in range(10_000):
            store.log("photo", {"happy": 1.0})


def test_full_disk_while_logging_is_507(store):
    fill_up(store)
    with make_client(store, sample_interval=0.0, ws_max_fps=1000) as c:
        r = c.post("/api/v1/analyze?log=true", content=jpeg())
        err = assert_error(r, 507, "disk_full")
        assert "full" in err["message"] and "Traceback" not in r.text
        assert c.post("/api/v1/analyze", content=jpeg()).status_code == 200  # analysis without logging still works
        with c.websocket_connect(WS) as ws:
            ws.receive_json()
            ws.send_bytes(jpeg())
            assert_ws_error(ws.receive_json(), 507)
            faces = ws.receive_json()
            assert faces["type"] == "faces" and faces["logged"] == 0


# ------------------------------------------------------------------------------------ the stream


def test_deeply_nested_stream_message_is_a_clear_error(store):
    with make_client(store, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_text("[" * 2048 + "]" * 2048)  # 4 KB
        err = assert_ws_error(ws.receive_json(), 422)
        assert "nested" in err["message"]
        ws.send_text('{"type": "config", "x": ' + "{" * 2030 + "}" * 2030 + "}")
        assert_ws_error(ws.receive_json(), 422)
        ws.send_bytes(jpeg())  # the connection is still open and usable
        assert ws.receive_json()["type"] == "faces"


def test_stream_frames_are_shrunk_and_extreme_aspects_refused(store):
    rec = ShapeRecorder()
    with make_client(store, recognizer=rec, ws_max_side=200, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_bytes(jpeg(800, 400))
        msg = ws.receive_json()
        assert (msg["width"], msg["height"]) == (200, 100) and rec.shapes[-1][:2] == (100, 200)
        strip = cv2.imencode(".png", np.zeros((1, 4000, 3), np.uint8))[1].tobytes()  # 4000 px, under the pixel cap
        ws.send_bytes(strip)
        err = assert_ws_error(ws.receive_json(), 422)
        assert err["code"] == "extreme_aspect" and len(rec.shapes) == 1
        ws.send_bytes(jpeg(900, 200))  # 4.5:1: a photo may be a panorama, a camera frame is not
        assert assert_ws_error(ws.receive_json(), 422)["code"] == "extreme_aspect" and len(rec.shapes) == 1


def test_photos_with_extreme_aspect_are_refused_and_big_ones_shrunk(store):
    rec = ShapeRecorder()
    with make_client(store, recognizer=rec, analyze_max_side=300) as c:
        strip = cv2.imencode(".png", np.zeros((2, 2000, 3), np.uint8))[1].tobytes()
        assert_error(post_photo(c, strip), 422, "extreme_aspect")
        body = post_photo(c, jpeg(1200, 900)).json()
        assert body["image"]["width"] == 1200 and rec.shapes[-1][:2] == (225, 300)
        assert body["faces"][0]["box"] == [300, 224, 600, 448]  # found at 1/4 size, mapped back


# ------------------------------------------------------------------------------------ decoding


def test_16_bit_png_reads_like_predict_does(store):
    """Issue 25 item 6: a 16-bit gray PNG became pure black and white on the server (one decoder now)."""
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    data = cv2.imencode(".png", ramp)[1].tobytes()
    rec = ShapeRecorder()
    with make_client(store, recognizer=rec) as c:
        assert post_photo(c, data).status_code == 200
    seen = rec.last
    assert seen.shape == (48, 64, 3) and len(np.unique(seen)) > 32  # a ramp, not two values
    assert abs(int(seen[0, 32, 0]) - 32 * 65535 // 63 // 257) <= 2


def test_jpegs_are_decoded_at_reduced_size_when_shrunk_anyway():
    data = jpeg(1600, 1200)
    info = media.probe(data, 40_000_000)
    assert info.draft_factor(400) == 4 and info.draft_factor(1600) == 1 and info.draft_factor(1000) == 1
    full = info.decode_bytes(1600)
    assert info.decode_bytes(400) < full / 8
    img, scale = media.decode_fit(data, info, 400)
    assert img.shape == (300, 400, 3) and scale == pytest.approx(0.25)
    ref = cv2.resize(cv2.imdecode(np.frombuffer(data, np.uint8), 1), (400, 300), interpolation=cv2.INTER_AREA)
    assert np.abs(img.astype(int) - ref).mean() < 3


def test_exif_rotation_maps_sizes(tmp_path):
    from PIL import Image

    im = Image.new("RGB", (400, 200), (200, 30, 30))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees: seen as 200 x 400
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    info = media.probe(buf.getvalue(), 10**6)
    assert info.size == (200, 400)
    img, scale = media.decode_fit(buf.getvalue(), info, 100)
    assert img.shape[:2] == (100, 50) and scale == pytest.approx(0.25)


def test_decoding_a_big_rgba_png_holds_a_fraction_of_the_old_peak(tmp_path):
    """The 6300 x 6300 RGBA case of issue 25 at 4000 x 4000: the server's decode used to hold 3.4 bytes per raw
    byte (548 MB for 6300 x 6300). Measured in a fresh process that only reads the file and decodes it."""
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("RGBA", (4000, 4000), (9, 99, 199, 255)).save(path, "PNG", compress_level=1)
    script = textwrap.dedent(f"""
        import resource
        from emoscope.server import media
        data = open({str(path)!r}, "rb").read()
        info = media.probe(data, 40_000_000)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        img, _ = media.decode_fit(data, info, 1920)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024, info.decode_bytes(1920))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    peak, estimate = map(int, out.stdout.split())
    raw = 4000 * 4000 * 4
    assert peak < 2.4 * raw, f"decode peak {peak / 1e6:.0f} MB for a {raw / 1e6:.0f} MB image"
    assert estimate >= peak  # the budget's estimate does not undercount


def test_byte_budget_never_exceeds_its_limit():
    async def main() -> tuple[int, list[str]]:
        budget = ByteBudget(100)
        order: list[str] = []

        async def job(name: str, n: int, limit: int | None = None) -> None:
            async with budget.hold(n, limit):
                assert budget.used <= 100 or budget.used == min(n, 100)
                await asyncio.sleep(0.02)
                order.append(name)

        await asyncio.gather(job("a", 60), job("b", 60), job("c", 30), job("huge", 500), job("big", 50, limit=75))
        return budget.peak, order

    peak, order = asyncio.run(main())
    assert peak <= 100 and sorted(order) == ["a", "b", "big", "c", "huge"]


def test_decoder_limits_concurrent_big_decodes(monkeypatch):
    """At most ``workers`` large decodes run at once, and the budget caps the bytes they hold together."""
    running, seen = 0, []

    def slow_decode(data, info, max_side):
        nonlocal running
        running += 1
        seen.append(running)
        time.sleep(0.05)
        running -= 1
        return np.zeros((2, 2, 3), np.uint8), 1.0

    big = media.ImageInfo("image/png", 6000, 6000, "RGBA")
    cost = big.decode_bytes(1920)
    monkeypatch.setattr(media, "probe", lambda *a, **k: big)
    monkeypatch.setattr(media, "decode_fit", slow_decode)

    def run(budget: int, workers: int) -> tuple[int, int]:
        seen.clear()
        dec = Decoder(budget_bytes=budget, workers=workers)

        async def main():
            await asyncio.gather(*(dec.decode(b"x", max_pixels=10**9, max_side=1920) for _ in range(6)))

        asyncio.run(main())
        return max(seen), dec.budget.peak

    budget = int(cost * 3.5 / 0.75)  # three fit in the large lane's 3/4: the two threads bound it
    most, peak = run(budget, workers=2)
    assert most == 2 and peak <= budget * 3 // 4
    budget = int(cost * 1.5 / 0.75)  # four threads, but the budget holds one at a time
    most, peak = run(budget, workers=4)
    assert most == 1 and peak <= budget * 3 // 4


def test_photos_in_flight_are_capped_before_decoding(store):
    """max_pending counts photos from admission (reading and decoding too), not only those queued for the model."""
    httpx = pytest.importorskip("httpx2")

    async def main() -> list[int]:
        app = make_client(store, max_pending=2).app
        app.state.emoscope.store = store
        gate = asyncio.Event()
        real = app.state.emoscope.decoder.decode

        async def held(*a, **k):
            await gate.wait()
            return await real(*a, **k)

        app.state.emoscope.decoder.decode = held
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            tasks = [asyncio.create_task(c.post("/api/v1/analyze", content=png())) for _ in range(2)]
            await asyncio.sleep(0.2)
            third = await c.post("/api/v1/analyze", content=png())
            gate.set()
            return [third.status_code] + [(await t).status_code for t in tasks]

    assert asyncio.run(main()) == [503, 200, 200]


# ------------------------------------------------------------------------------------ health


def test_health_hides_the_database_path_and_counts_rows(store, tmp_path):
    with make_client(store) as c:
        for _ in range(3):
            post_photo(c, jpeg(), log="true")
        text = c.get("/api/v1/health").text
        h = json.loads(text)
        assert str(tmp_path) not in text and "mood.db" not in text and h["mood"]["db"] == "sqlite"
        assert h["mood"]["rows"] == 3 == store.count()


@pytest.mark.parametrize("late", [False, True])
def test_small_images_are_not_held_behind_big_ones(monkeypatch, late):
    """Waiting images are analysed smallest first, and a batch never mixes a frame with a far bigger picture."""
    import threading

    from emoscope.server import inference
    from emoscope.server.inference import Inference

    gate = threading.Event()

    rec = GatedRecorder(gate)  # holds the worker while the others queue up
    inf = Inference(rec, max_batch=8)

    async def main() -> None:
        first = asyncio.create_task(inf.predict(np.zeros((8, 8, 3), np.uint8)))
        await asyncio.sleep(0.1)
        sizes = [950, 900, 40] if late else [950, 30, 900, 40]
        waiting = []
        for s in sizes:
            waiting.append(asyncio.create_task(inf.predict(np.zeros((s, s, 3), np.uint8))))
            if late and s == 900:
                await asyncio.sleep(0.3)  # the 40 px one arrives long after the big ones
        await asyncio.sleep(0.1)
        gate.set()
        await asyncio.gather(first, *waiting)
        await inf.close()

    monkeypatch.setattr(inference, "SMALL_PIXELS", 10**9)  # one worker here: the order within it is tested
    monkeypatch.setattr(inference, "BATCH_MAX_PIXELS", 2 * 10**6)  # room for both big ones in one batch
    if late:  # a steady flow of small images must not starve a big one: it waits at most 0.05 s per MP
        monkeypatch.setattr(inference, "SECONDS_PER_MEGAPIXEL", 0.05)
    asyncio.run(main())
    if late:
        assert rec.batches == [[8], [900, 950], [40]]
    else:
        assert rec.batches == [[8], [30, 40], [900, 950]]


def test_a_big_picture_in_analysis_does_not_block_a_small_one():
    """Large pictures have their own worker: a photo is answered while a 40 MP upload's detection still runs."""
    import threading

    from emoscope.server.inference import Inference

    gate = threading.Event()

    class SlowOnBig(FakeRecognizer):
        def predict_arrays(self, arrays):
            if arrays[0].shape[0] > 1500:
                gate.wait(10)
            return super().predict_arrays(arrays)

    inf = Inference(SlowOnBig())

    async def main() -> bool:
        big = asyncio.create_task(inf.predict(np.zeros((1900, 1900, 3), np.uint8)))
        await asyncio.sleep(0.05)
        small = await asyncio.wait_for(inf.predict(np.zeros((100, 100, 3), np.uint8)), timeout=5)
        still_running = not big.done()
        gate.set()
        await big
        await inf.close()
        return bool(small) and still_running

    assert asyncio.run(main())


def test_slow_analysis_still_answers_a_connected_client(store):
    class Slow(FakeRecognizer):
        def predict_arrays(self, arrays):
            time.sleep(1.2)  # longer than the disconnect poll
            return super().predict_arrays(arrays)

    with make_client(store, recognizer=Slow()) as c:
        assert post_photo(c, jpeg()).status_code == 200


def test_a_client_that_gave_up_loses_its_place():
    """Work for a disconnected client is cancelled while it waits (budget, queue), not carried on."""
    from emoscope.server.errors import ApiError
    from emoscope.server.routes import analyze

    class Gone:
        async def is_disconnected(self) -> bool:
            return True

    cancelled = asyncio.Event()

    async def waiting_forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> int:
        try:
            await analyze.unless_gone(Gone(), waiting_forever())
        except ApiError as exc:
            return exc.status
        return 0

    t0 = time.monotonic()
    assert asyncio.run(main()) == 499
    assert cancelled.is_set() and time.monotonic() - t0 < 5


def test_unexpected_errors_are_json_500s_without_details(store, monkeypatch):
    def broken() -> int:
        raise RuntimeError("secret internal detail")

    with make_client(store) as c:
        monkeypatch.setattr(store, "count", broken)
        r = c.get("/api/v1/health")
        err = assert_error(r, 500, "internal_error")
        assert "secret" not in r.text and "Traceback" not in r.text and "RuntimeError" in err["message"]
        monkeypatch.undo()
        assert c.get("/api/v1/health").status_code == 200
