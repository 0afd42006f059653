"""The web API in-process (FastAPI TestClient): every endpoint, every refusal, aggregates against rows written here.

Most tests use a tiny fake recognizer (fast, deterministic: one face, "happy" unless told otherwise); one test
runs the shipped model on a real face photo and checks the structure of the answer only.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import time
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'emoscope[web]'")
from fastapi.testclient import TestClient  # noqa: E402
from starlette.testclient import WebSocketDenialResponse  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from emoscope.labels import EMOTIONS  # noqa: E402
from emoscope.mood import MoodRow, MoodStore  # noqa: E402
from emoscope.recognizer import Face  # noqa: E402
from emoscope.server import ServerSettings, SettingsError, create_app  # noqa: E402
from emoscope.server.guards import TokenBucket, is_loopback  # noqa: E402
from emoscope.server.media import sniff  # noqa: E402

TOKEN = "test-token-0123456789abcdef"
BASE = "http://127.0.0.1"
WS = "ws://127.0.0.1/api/v1/stream"  # TestClient does not apply base_url to WebSockets


class FakeRecognizer:
    """One face in the middle of every picture; label fixed by ``top``."""

    classes = EMOTIONS
    backend_name = "fake"

    def __init__(self, top: str = "happy", n_faces: int = 1) -> None:
        self.top, self.n_faces, self.calls = top, n_faces, 0

    def predict_arrays(self, arrays):
        self.calls += 1
        out = []
        for im in arrays:
            h, w = im.shape[:2]
            faces = []
            for i in range(self.n_faces):
                probs = {e: (0.64 if e == self.top else 0.06) for e in EMOTIONS}
                faces.append(Face((w // 4 + i, h // 4, w // 2, h // 2), 0.9, probs, self.top))
            out.append(faces)
        return out


class GatedRecorder(FakeRecognizer):
    """A FakeRecognizer whose first call waits (up to 5 s) for ``gate``, so the worker stays busy while other
    requests queue up; records ``key`` of each array of each batch in ``batches``, to check queue order."""

    def __init__(self, gate, key=lambda a: a.shape[1]) -> None:
        super().__init__()
        self.gate, self.key = gate, key
        self.batches: list[list] = []

    def predict_arrays(self, arrays):
        if not self.batches:
            self.gate.wait(5)
        self.batches.append([self.key(a) for a in arrays])
        return super().predict_arrays(arrays)


def jpeg(w: int = 64, h: int = 48, quality: int = 80) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (30, 120, 200)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def png(w: int = 20, h: int = 10) -> bytes:
    return cv2.imencode(".png", np.full((h, w, 3), 128, np.uint8))[1].tobytes()


@pytest.fixture
def store(tmp_path):
    """SQLite in tmp_path; or, with EMOSCOPE_TEST_PG_URL set, an emptied PostgreSQL scratch database."""
    pg = os.environ.get("EMOSCOPE_TEST_PG_URL")
    s = MoodStore(pg or tmp_path / "mood.db")
    if pg:
        with s.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM mood_events"))
            conn.execute(sa.text("DELETE FROM smile_captures"))
    yield s
    s.close()


def make_client(store, recognizer=None, **settings) -> TestClient:
    app = create_app(ServerSettings(**settings), recognizer=recognizer or FakeRecognizer(), store=store)
    return TestClient(app, base_url=BASE)


@pytest.fixture
def client(store):
    with make_client(store) as c:
        yield c


def post_photo(c: TestClient, data: bytes, name: str = "face.jpg", ctype: str = "image/jpeg", **params):
    return c.post("/api/v1/analyze", params=params, files={"file": (name, data, ctype)})


def assert_error(r, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["status"] == status and err["message"]
    if code:
        assert err["code"] == code
    return err


# ------------------------------------------------------------------------------------------ basics


def test_health(client, store):
    store.log("live", {"happy": 1.0})
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["model"]["classes"] == list(EMOTIONS)
    assert h["mood"]["rows"] == 1 and h["mood"]["schema_version"] >= 1
    assert h["limits"]["max_upload_bytes"] == 10 * 1024 * 1024
    assert h["auth"]["token_required"] is False


def test_openapi_documents_the_api(client):
    spec = client.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/analyze", "/api/v1/mood", "/api/v1/mood.csv", "/api/v1/health", "/api/v1/captures"):
        assert path in spec["paths"], path
    assert "multipart/form-data" in spec["paths"]["/api/v1/analyze"]["post"]["requestBody"]["content"]
    assert {"413", "415", "422"} <= set(spec["paths"]["/api/v1/analyze"]["post"]["responses"])


def test_api_docs_page_loads_swagger_ui_from_this_server(client):
    """The docs page must work offline: its script and styles come from this server, not a CDN."""
    r = client.get("/api/docs")
    assert r.status_code == 200 and "/api/v1/openapi.json" in r.text
    assert "cdn.jsdelivr.net" not in r.text and "/docs-assets/swagger-ui-bundle.js" in r.text
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200


def test_api_docs_fall_back_to_the_cdn_without_fastapi_offline(store, monkeypatch):
    """Without the Swagger UI files the page still renders (from the CDN, so online only) and the app says so."""
    import emoscope.server.routes.pages as server_pages

    monkeypatch.setattr(server_pages, "swagger_ui_dir", lambda: None)
    with make_client(store) as c:
        assert c.app.state.docs_offline is False
        r = c.get("/api/docs")
        assert r.status_code == 200 and "/api/v1/openapi.json" in r.text
        assert "cdn.jsdelivr.net" in r.text and "/docs-assets/" not in r.text
        assert c.get("/docs-assets/swagger-ui-bundle.js").status_code == 404
    monkeypatch.undo()
    with make_client(store) as c:  # the real lookup: the web extra ships the files
        assert c.app.state.docs_offline is True


def test_page_and_static_files(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert 'id="live-video"' in r.text
    for f in ("app.js", "style.css"):
        assert client.get(f"/static/{f}").status_code == 200
    assert_error(client.get("/api/v1/nope"), 404, "not_found")


# ------------------------------------------------------------------------------------------ photos


def test_analyze_returns_faces(client):
    r = post_photo(client, jpeg(64, 48))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 64, "height": 48, "type": "image/jpeg"}
    (face,) = body["faces"]
    assert face["box"] == [16, 12, 32, 24] and face["label"] == "happy"
    assert set(face["probs"]) == set(EMOTIONS) and sum(face["probs"].values()) == pytest.approx(1, abs=1e-3)
    assert body["logged"] == 0 and "annotated" not in body


@pytest.mark.parametrize("fmt,magic", [("jpeg", b"\xff\xd8\xff"), ("png", b"\x89PNG")])
def test_analyze_annotated_image(client, fmt, magic):
    r = post_photo(client, jpeg(80, 60), annotate=1, format=fmt)
    ann = r.json()["annotated"]
    raw = base64.b64decode(ann["data"])
    assert raw.startswith(magic) and ann["mime"] == f"image/{fmt}"
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (60, 80) == (ann["height"], ann["width"])


def test_analyze_raw_body_and_type_by_bytes(client):
    r = client.post("/api/v1/analyze", content=png(), headers={"content-type": "application/octet-stream"})
    assert r.status_code == 200 and r.json()["image"]["type"] == "image/png"
    # a PNG called .txt is analysed: the bytes decide, not the name or declared type
    r = post_photo(client, png(), name="notes.txt", ctype="text/plain")
    assert r.status_code == 200 and r.json()["image"]["type"] == "image/png"


def test_big_photos_are_analysed_smaller_but_boxes_map_back(store):
    with make_client(store, analyze_max_side=100) as c:
        body = post_photo(c, jpeg(400, 200), annotate=1).json()
    assert body["image"]["width"] == 400
    assert body["faces"][0]["box"] == [100, 48, 200, 100]  # found at (25,12,50,25) on the 100x50 copy
    assert body["annotated"]["width"] == 100


def test_analyze_logs_rows_when_asked(client, store):
    r = post_photo(client, jpeg(), log="true")
    assert r.json()["logged"] == 1
    (row,) = list(store.rows())
    assert row["source"] == "photo" and row["label"] == "happy" and row["happy"] == pytest.approx(0.64)


def test_mood_logging_off_writes_nothing(store):
    with make_client(store, mood_log=False) as c:
        assert post_photo(c, jpeg(), log=1).json()["logged"] == 0
    assert store.count() == 0


# ------------------------------------------------------------------------------------------ refusals


def test_refuses_non_images_with_415(client):
    err = assert_error(post_photo(client, b"hello, I am a text file pretending" * 3, name="face.jpg"), 415)
    assert err["code"] == "unsupported_media_type"
    # an SVG / HTML upload is not an accepted type either
    assert_error(post_photo(client, b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", name="x.png"), 415)


def test_refuses_corrupt_images_with_422(client):
    assert_error(post_photo(client, jpeg()[:40]), 422, "bad_image")
    assert_error(post_photo(client, b""), 422)
    r = client.post("/api/v1/analyze", files={"other": ("x.txt", b"abc", "text/plain")}, data={"a": "b"})
    assert r.status_code in (415, 422)


def test_refuses_missing_file_field(client):
    r = client.post("/api/v1/analyze", data={"note": "no file"}, files={"x": ("", b"", "")})
    assert r.status_code == 422


def test_upload_size_cap(store):
    with make_client(store, max_upload_bytes=2000) as c:
        assert post_photo(c, jpeg(8, 8)).status_code == 200
        big = jpeg(600, 600, quality=100)
        assert len(big) > 2000
        assert_error(post_photo(c, big), 413, "too_large")  # file part over the cap
        # a body far over the cap is refused from Content-Length before it is read
        assert_error(post_photo(c, b"\xff\xd8\xff" + bytes(200_000)), 413, "too_large")

        def chunks():  # no Content-Length: the cap is counted while reading
            for _ in range(100):
                yield b"\xff" * 1000

        r = c.post("/api/v1/analyze", content=chunks(), headers={"content-type": "application/octet-stream"})
        assert_error(r, 413)


def test_pixel_cap(store):
    with make_client(store, max_pixels=400) as c:
        assert post_photo(c, png(20, 20)).status_code == 200
        assert_error(post_photo(c, png(21, 20)), 413, "too_many_pixels")


def test_photo_rate_cap(store):
    with make_client(store, analyze_rate=0.5, analyze_burst=2) as c:
        assert post_photo(c, jpeg()).status_code == 200
        assert post_photo(c, jpeg()).status_code == 200
        r = post_photo(c, jpeg())
        err = assert_error(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1 and err["retry_after"] > 0


def test_bad_query_parameters(client):
    assert_error(client.post("/api/v1/analyze?format=gif", content=png()), 422, "invalid_input")


# ------------------------------------------------------------------------------------------ token, hosts, CORS


def test_public_bind_needs_a_token():
    with pytest.raises(SettingsError, match="token"):
        create_app(ServerSettings(host="0.0.0.0"), recognizer=FakeRecognizer(), store=MoodStore(":memory:"))
    with pytest.raises(SettingsError, match="16"):
        ServerSettings(token="short").check()
    assert is_loopback("127.0.0.5") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_token_checked_on_every_api_call_and_websocket(store):
    with make_client(store, host="0.0.0.0", token=TOKEN) as c:
        for method, path in [("get", "/api/v1/health"), ("get", "/api/v1/mood"), ("get", "/api/v1/mood.csv"),
                             ("get", "/api/v1/captures"), ("post", "/api/v1/analyze")]:  # fmt: skip
            r = getattr(c, method)(path)
            assert_error(r, 401, "missing_token")
            assert r.headers["www-authenticate"].startswith("Bearer")
        wrong = {"Authorization": "Bearer wrong-token-0000000000"}
        assert_error(c.get("/api/v1/health", headers=wrong), 401, "bad_token")
        assert c.get("/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert c.get("/api/v1/health", headers={"X-Emoscope-Token": TOKEN}).json()["auth"]["token_required"]
        # an unauthenticated upload is refused before its body is read
        assert_error(post_photo(c, jpeg()), 401)
        # the page itself loads (it asks for the token), the API does not
        assert c.get("/").status_code == 200

        with pytest.raises(WebSocketDenialResponse) as denied, c.websocket_connect(WS):
            pass
        assert denied.value.status_code == 401 and denied.value.json()["error"]["code"] == "missing_token"
        bad = ["emoscope", "token.nope-nope-nope-nope"]
        with pytest.raises(WebSocketDenialResponse) as denied, c.websocket_connect(WS, subprotocols=bad):
            pass
        assert denied.value.status_code == 401
        with c.websocket_connect(WS, subprotocols=["emoscope", f"token.{TOKEN}"]) as ws:
            assert ws.accepted_subprotocol == "emoscope"
            assert ws.receive_json()["type"] == "hello"


def test_token_on_loopback_is_enforced_too(store):
    with make_client(store, token=TOKEN) as c:
        assert_error(c.get("/api/v1/health"), 401)


def test_dns_rebinding_host_check(store):
    with make_client(store) as c:
        assert_error(c.get("/api/v1/health", headers={"host": "evil.example:8000"}), 400, "bad_host")
        assert c.get("/api/v1/health", headers={"host": "localhost:8000"}).status_code == 200


def test_no_cors_unless_asked(store):
    with make_client(store) as c:
        r = c.get("/api/v1/health", headers={"Origin": "http://other.example"})
        assert "access-control-allow-origin" not in r.headers
        other = {"Origin": "http://other.example"}
        with pytest.raises(WebSocketDenialResponse) as denied, c.websocket_connect(WS, headers=other):
            pass
        assert denied.value.status_code == 403
        with c.websocket_connect(WS, headers={"Origin": BASE}) as ws:
            assert ws.receive_json()["type"] == "hello"
    with make_client(store, cors_origins=["http://app.example"], host="0.0.0.0", token=TOKEN) as c:
        asks = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization"}  # fmt: skip
        pre = c.options("/api/v1/analyze", headers=asks)
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://app.example"
        r = c.get("/api/v1/health", headers={"Origin": "http://app.example", "Authorization": f"Bearer {TOKEN}"})
        assert r.headers["access-control-allow-origin"] == "http://app.example"


# ------------------------------------------------------------------------------------------ live stream


def frames_until(ws, kind: str, limit: int = 10) -> dict:
    for _ in range(limit):
        msg = ws.receive_json()
        if msg["type"] == kind:
            return msg
    raise AssertionError(f"no {kind} message")


def test_stream_tracks_faces_and_logs_sampled_rows(store):
    with make_client(store, sample_interval=0.0, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["classes"] == list(EMOTIONS)
        assert hello["limits"]["max_frame_bytes"] == 1024 * 1024
        logged = 0
        for i in range(3):
            ws.send_bytes(jpeg(64, 48))
            msg = ws.receive_json()
            assert msg["type"] == "faces" and msg["seq"] == i + 1 and (msg["width"], msg["height"]) == (64, 48)
            (f,) = msg["faces"]
            assert f["track_id"] == msg["faces"][0]["track_id"] and f["box"] == [16, 12, 32, 24]
            assert set(f["probs"]) == set(f["smoothed"]) == set(EMOTIONS) and f["label"] == "happy"
            logged += msg["logged"]
        assert logged == 3
    rows = list(store.rows())
    assert len(rows) == 3 and {r["source"] for r in rows} == {"live"} and len({r["session"] for r in rows}) == 1


def test_stream_samples_once_per_interval_per_track(store):
    with make_client(store, sample_interval=60.0, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        counts = []
        for _ in range(4):
            ws.send_bytes(jpeg())
            counts.append(ws.receive_json()["logged"])
        assert counts == [1, 0, 0, 0]
        ws.send_text(json.dumps({"type": "config", "log": False}))
        assert ws.receive_json()["options"]["log"] is False
    assert store.count() == 1


def test_stream_refusals(store):
    with make_client(store, ws_max_frame_bytes=3000, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_bytes(b"not an image at all")
        assert_ws_error(ws.receive_json(), 415)
        ws.send_text("{not json")
        assert_ws_error(ws.receive_json(), 422)
        ws.send_text(json.dumps({"type": "config", "smile_frames": 0}))
        assert_ws_error(ws.receive_json(), 422)
        ws.send_bytes(jpeg()[:100])
        assert_ws_error(ws.receive_json(), 422)
        ws.send_bytes(jpeg())  # still usable after those
        assert ws.receive_json()["type"] == "faces"
        ws.send_bytes(b"\xff\xd8\xff" + bytes(5000))
        err = assert_ws_error(ws.receive_json(), 413)
        assert err["code"] == "frame_too_large"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1009


def test_stream_pixel_cap(store):
    with make_client(store, ws_max_frame_pixels=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_bytes(jpeg(64, 48))
        assert_ws_error(ws.receive_json(), 413)


def assert_ws_error(msg: dict, status: int) -> dict:
    assert msg["type"] == "error", msg
    assert msg["error"]["status"] == status and msg["error"]["message"]
    return msg["error"]


def test_stream_rate_cap(store):
    with make_client(store, ws_max_fps=2) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        kinds = []
        for _ in range(6):
            ws.send_bytes(jpeg())
            msg = ws.receive_json()
            kinds.append(msg["type"] if msg["type"] == "faces" else msg["error"]["status"])
        assert kinds.count("faces") == 2 and kinds.count(429) == 4


def test_stream_connection_cap(store):
    with make_client(store, ws_max_connections=1) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        with pytest.raises(WebSocketDenialResponse) as denied, c.websocket_connect(WS):
            pass
        assert denied.value.status_code == 503


def test_two_faces_get_two_tracks(store):
    rec = FakeRecognizer(n_faces=2)
    with make_client(store, recognizer=rec, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_bytes(jpeg(400, 200))
        faces = ws.receive_json()["faces"]
        assert len(faces) == 2


# ------------------------------------------------------------------------------------------ smile capture


def test_smile_capture_only_when_on(store):
    with make_client(store, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        for _ in range(4):  # smiling, but the mode is off: nothing stored
            ws.send_bytes(jpeg())
            assert ws.receive_json()["smile"]["on"] is False
        assert store.list_captures() == []
        ws.send_text(json.dumps({"type": "config", "smile_capture": True, "smile_frames": 3}))
        assert ws.receive_json()["options"] == {"log": True, "smile_capture": True, "smile_frames": 3}
        frame = jpeg(50, 40)
        progress = []
        for _ in range(3):
            ws.send_bytes(frame)
            progress.append(ws.receive_json()["smile"]["progress"])
        assert progress == pytest.approx([1 / 3, 2 / 3, 1.0], abs=1e-3)
        cap = frames_until(ws, "capture")["capture"]
        assert cap["n_faces"] == 1 and (cap["width"], cap["height"]) == (50, 40)

        listed = c.get("/api/v1/captures").json()["captures"]
        assert [x["id"] for x in listed] == [cap["id"]] and listed[0]["url"] == cap["url"]
        img = c.get(cap["url"])
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg" and img.content == frame
        assert img.headers["x-content-type-options"] == "nosniff"
        assert c.delete(cap["url"]).status_code == 204
        assert_error(c.delete(cap["url"]), 404)
        assert_error(c.get(cap["url"]), 404)


def test_no_capture_without_a_smile(store):
    sad = FakeRecognizer("sad")
    with make_client(store, recognizer=sad, ws_max_fps=1000) as c, c.websocket_connect(WS) as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"type": "config", "smile_capture": True, "smile_frames": 1}))
        ws.receive_json()
        for _ in range(3):
            ws.send_bytes(jpeg())
            assert ws.receive_json()["type"] == "faces"
    assert store.list_captures() == []


# ------------------------------------------------------------------------------------------ mood endpoints

T0 = (time.time() // 86400 - 3) * 86400  # a recent UTC midnight (old rows would be pruned by retention)
DAY0 = datetime.fromtimestamp(T0, UTC)


def probs(top: str) -> dict[str, float]:
    return {e: (0.7 if e == top else 0.05) for e in EMOTIONS}


@pytest.fixture
def mood_rows(store):
    rows = [MoodRow(T0 + 60 * i, "live", probs("happy"), track_id=1) for i in range(3)]
    rows.append(MoodRow(T0 + 900, "photo", probs("sad")))
    rows += [MoodRow(T0 + 3 * 3600, "live", probs("neutral"), track_id=2) for _ in range(2)]
    rows.append(MoodRow(T0 + 86400 + 60, "live", probs("happy")))
    store.add(rows)
    return rows


def test_mood_aggregates_match_written_rows(client, mood_rows):
    iso = f"{DAY0:%Y-%m-%d}T00:00:00Z"
    r = client.get("/api/v1/mood", params={"from": iso, "to": T0 + 2 * 86400, "bucket": "hour"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 7 and body["bucket"] == "hour" and body["classes"] == list(EMOTIONS)
    assert [(b["t"] - T0, b["n"]) for b in body["buckets"]] == [(0, 4), (3 * 3600, 2), (86400, 1)]
    assert body["buckets"][0]["start"] == f"{DAY0:%Y-%m-%d}T00:00:00.000Z"
    b0 = body["buckets"][0]
    assert b0["counts"]["happy"] == 3 and b0["counts"]["sad"] == 1 and b0["happy_share"] == pytest.approx(0.75)
    assert b0["mean"]["happy"] == pytest.approx((3 * 0.7 + 0.05) / 4, abs=1e-5)

    days = client.get("/api/v1/mood", params={"from": T0, "to": T0 + 7 * 86400, "bucket": "day"}).json()
    assert [(b["n"], b["happy_share"]) for b in days["buckets"]] == [(6, 0.5), (1, 1.0)]
    # local days at UTC-5: the first six rows fall on April 30 local time
    west = client.get("/api/v1/mood", params={"from": T0 - 86400, "to": T0 + 7 * 86400, "bucket": "day",
                                              "tz_offset": -300}).json()  # fmt: skip
    assert west["buckets"][0]["t"] == T0 - 86400 + 5 * 3600 and west["buckets"][0]["n"] == 6
    photo = client.get("/api/v1/mood", params={"from": T0, "to": T0 + 86400, "source": "photo"}).json()
    assert photo["total"] == 1 and photo["buckets"][0]["dominant"] == "sad"


def test_mood_defaults_to_recent_rows(client, store):
    store.log("live", probs("happy"))
    assert client.get("/api/v1/mood").json()["total"] == 1
    assert client.get("/api/v1/mood?bucket=minute").json()["total"] == 1


def test_mood_refusals(client):
    assert_error(client.get("/api/v1/mood?bucket=week"), 422, "invalid_input")
    assert_error(client.get("/api/v1/mood?from=2024-05-02&to=2024-05-01"), 422, "bad_range")
    assert_error(client.get("/api/v1/mood?from=tomorrow"), 422, "bad_time")
    assert_error(client.get("/api/v1/mood?tz_offset=5000"), 422)
    assert_error(client.get("/api/v1/mood?bucket=minute&from=2020-01-01&to=2024-01-01"), 422, "range_too_long")
    assert_error(client.get("/api/v1/mood.csv?from=soon"), 422, "bad_time")


def test_mood_csv_export(client, mood_rows):
    r = client.get("/api/v1/mood.csv", params={"from": T0 + 100, "to": T0 + 86400})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["label"] for row in rows] == ["happy", "sad", "neutral", "neutral"]
    assert rows[1]["source"] == "photo" and float(rows[1]["sad"]) == pytest.approx(0.7)
    everything = list(csv.DictReader(io.StringIO(client.get("/api/v1/mood.csv").text)))
    assert len(everything) == len(mood_rows)


# ------------------------------------------------------------------------------------------ helpers


def test_sniff_and_token_bucket():
    assert sniff(jpeg()) == "image/jpeg" and sniff(png()) == "image/png"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp" and sniff(b"GIF89a...") == "image/gif"
    assert sniff(b"%PDF-1.7") is None and sniff(b"") is None
    b = TokenBucket(rate=2, burst=2)
    t = time.monotonic()
    assert b.take(t) == 0 and b.take(t) == 0 and b.take(t) == pytest.approx(0.5)
    assert b.take(t + 0.5) == 0


# ------------------------------------------------------------------------------------------ the real model


@pytest.fixture(scope="module")
def real_recognizer():
    from emoscope.recognizer import Recognizer

    return Recognizer()


def test_real_model_on_a_face_photo(tmp_path, real_recognizer):
    from skimage import data

    photo = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
    with MoodStore(tmp_path / "m.db") as st, make_client(st, recognizer=real_recognizer) as c:
        body = post_photo(c, photo, annotate=1, log=1).json()
        assert len(body["faces"]) >= 1 and body["logged"] == len(body["faces"])
        f = body["faces"][0]
        x, y, w, h = f["box"]
        assert 0 <= x < 512 and 0 <= y < 512 and 20 < w <= 512 and 20 < h <= 512
        assert set(f["probs"]) == set(EMOTIONS) and sum(f["probs"].values()) == pytest.approx(1, abs=1e-3)
        assert f["label"] == max(f["probs"], key=f["probs"].get)
        assert base64.b64decode(body["annotated"]["data"])[:3] == b"\xff\xd8\xff"
        with c.websocket_connect(WS) as ws:
            ws.receive_json()
            small = cv2.imencode(".jpg", cv2.resize(cv2.imdecode(np.frombuffer(photo, np.uint8), 1), (320, 320)))[1]
            for _ in range(2):
                ws.send_bytes(small.tobytes())
                msg = ws.receive_json()
            assert msg["type"] == "faces" and len(msg["faces"]) >= 1 and msg["faces"][0]["track_id"] >= 0
