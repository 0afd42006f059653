// emoscope page: live webcam, photo analysis, mood dashboard, smile captures. Plain JS, no build step.
// Talks only to this server's /api/v1 (token, when the server has one, in the Authorization header or the
// WebSocket sub-protocol, never in a URL).
"use strict";

const API = "/api/v1";
const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
// Same hues as emoscope.annotate (there in BGR).
const COLORS = {
  angry: "#dc2828", disgust: "#3c8c28", fear: "#963ca0", happy: "#ffc800",
  sad: "#2878c8", surprise: "#00c8e6", neutral: "#aaaaaa", contempt: "#8c5a5a",
};
const FRAME_WIDTH = 480; // live frames are downscaled to this width before sending
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const pct = (p) => `${Math.round(p * 100)}%`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// ------------------------------------------------------------------------------------------ messages
// An error belongs to the view it happened in: it is shown inside that panel (and cleared by that view's next
// success), never left in the header where it would follow the user to other tabs. The header line holds short
// news for the view on screen (cleared on a tab change) and server-wide problems (scope "").
let statusTimer = 0;
let statusScope = "";
function setStatus(text, isError = false, scope = "") {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", isError);
  statusScope = scope;
  clearTimeout(statusTimer);
  if (text && !isError) statusTimer = setTimeout(() => { s.textContent = ""; }, 6000);
}

function showError(scope, text) {
  const box = $(`${scope}-error`);
  box.textContent = text;
  box.hidden = !text;
  if (text && statusScope === scope) setStatus("");
}

const clearError = (scope) => showError(scope, "");

function toast(text) {
  const t = el("div", { class: "toast", role: "status", text });
  document.body.append(t);
  setTimeout(() => t.remove(), 3500);
}

// ------------------------------------------------------------------------------------------ token + API
let token = sessionStorage.getItem("emoscope-token") || "";
(function tokenFromFragment() {
  const m = location.hash.match(/token=([A-Za-z0-9._~-]+)/);
  if (m) {
    token = m[1];
    sessionStorage.setItem("emoscope-token", token);
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function askToken() {
  const dlg = $("token-dialog");
  return new Promise((resolve) => {
    if (dlg.open) { dlg.addEventListener("close", () => resolve(token), { once: true }); return; }
    $("token-input").value = "";
    dlg.addEventListener("close", () => {
      const v = $("token-input").value.trim();
      if (v) { token = v; sessionStorage.setItem("emoscope-token", v); }
      resolve(token);
    }, { once: true });
    dlg.showModal();
  });
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, opts = {}, retried = false) {
  const headers = new Headers(opts.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const res = await fetch(API + path, { ...opts, headers });
  if (res.status === 401 && !retried) {
    await askToken();
    return api(path, opts, true);
  }
  if (!res.ok) {
    let err = { status: res.status, code: "http_error", message: res.statusText };
    try { err = (await res.json()).error || err; } catch (_) { /* not JSON */ }
    throw new ApiError(err.status, err.code, err.message);
  }
  return res;
}

const apiJson = async (path, opts) => (await api(path, opts)).json();

// ------------------------------------------------------------------------------------------ tabs
const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
const onShow = {};

function selectTab(tab, focus = true) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  const name = tab.id.replace("tab-", "");
  if (statusScope && statusScope !== name) setStatus("");
  history.replaceState(null, "", `#${name}`);
  if (onShow[name]) onShow[name]();
}

for (const t of tabs) {
  t.addEventListener("click", () => selectTab(t));
  t.addEventListener("keydown", (e) => {
    const i = tabs.indexOf(t);
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    selectTab(tabs[(to + tabs.length) % tabs.length]);
  });
}

// ------------------------------------------------------------------------------------------ faces: one view model
// Every number shown for a face (box label, card title, bars) comes from faceView(), so the box and its card can
// never disagree. Faces are numbered from 1: live faces by their track (stable while the face stays in view),
// photo faces in the order the API lists them.
function faceView(n, f, probs) {
  const p = probs[f.label] || 0;
  return { n, box: f.box, label: f.label, probs, summary: `${f.label} ${pct(p)}` };
}

function faceCard(v) {
  const card = el("div", { class: "face-card", role: "group", tabindex: "0", "data-face": String(v.n) });
  const sw = el("span", { class: "swatch" });
  card.append(el("h4", {}, sw, el("span", { class: "title" })), el("div", { class: "bars" }));
  updateCard(card, v);
  return card;
}

function updateCard(card, v) {
  card.querySelector(".swatch").style.background = COLORS[v.label] || "#fff";
  card.querySelector(".title").textContent = `Face ${v.n}: ${v.summary}`;
  card.setAttribute("aria-label", `Face ${v.n}: ${v.summary}`);
  const bars = card.querySelector(".bars");
  const names = EMOTIONS.concat(Object.keys(v.probs).filter((e) => !EMOTIONS.includes(e))).filter((e) => e in v.probs);
  if (bars.childElementCount !== names.length * 3) {
    bars.replaceChildren();
    for (const e of names) {
      const fill = el("span");
      fill.style.background = COLORS[e] || "#888";
      bars.append(el("span", { text: e }), el("div", { class: "bar" }, fill), el("span", { class: "pct" }));
    }
  }
  names.forEach((e, i) => {
    const [name, bar, num] = Array.from(bars.children).slice(3 * i, 3 * i + 3);
    const best = e === v.label;
    name.classList.toggle("best", best);
    num.classList.toggle("best", best);
    bar.firstChild.style.width = pct(v.probs[e]);
    num.textContent = pct(v.probs[e]);
  });
}

/** Show `views` as cards in `box`, updating cards in place (keyed by face number) so hover and focus survive. */
function renderCards(box, views, emptyText) {
  const keep = new Set(views.map((v) => String(v.n)));
  for (const c of Array.from(box.children)) if (!keep.has(c.dataset.face)) c.remove();
  if (!views.length) { box.append(el("p", { class: "muted", text: emptyText })); return; }
  views.forEach((v, i) => {
    let card = box.querySelector(`.face-card[data-face="${v.n}"]`);
    if (card) updateCard(card, v);
    else card = faceCard(v);
    if (box.children[i] !== card) box.insertBefore(card, box.children[i] || null);
  });
}

// ------------------------------------------------------------------------------------------ overlay (SVG)
// Boxes and labels are drawn by the page over the <img>/<video>, in screen pixels (so text keeps its size on a
// phone), from the face boxes in the JSON. `geom` maps source pixels to the overlay: x_screen = ox + x * k.
const LABEL_FONT = "600 13px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
const measure = document.createElement("canvas").getContext("2d");

/** Black or white, whichever contrasts more with the label colour `hex` (#rrggbb). */
function inkFor(hex) {
  const lin = (i) => { const c = parseInt(hex.slice(i, i + 2), 16) / 255; return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = 0.2126 * lin(1) + 0.7152 * lin(3) + 0.0722 * lin(5);
  return lum > 0.179 ? "#000000" : "#ffffff"; // 0.179: where both give the same contrast ratio
}

function textWidth(text) {
  measure.font = LABEL_FONT;
  return measure.measureText(text).width;
}

function renderOverlay(layer, views, geom) {
  const { ox, oy, k, cw, ch } = geom;
  layer.setAttribute("viewBox", `0 0 ${cw} ${ch}`);
  layer.setAttribute("width", cw);
  layer.setAttribute("height", ch);
  const keep = new Set(views.map((v) => String(v.n)));
  for (const g of Array.from(layer.querySelectorAll("g.face"))) if (!keep.has(g.dataset.face)) g.remove();
  for (const v of views) {
    let g = layer.querySelector(`g.face[data-face="${v.n}"]`);
    if (!g) {
      g = svg("g", { class: "face", "data-face": String(v.n) });
      g.append(svg("rect", { class: "halo" }), svg("rect", { class: "box" }), svg("rect", { class: "tag" }),
        svg("text", { class: "tag-text" }));
      layer.append(g);
    }
    const [x, y, w, h] = v.box;
    const X = ox + x * k;
    const Y = oy + y * k;
    const W = w * k;
    const H = h * k;
    const color = COLORS[v.label] || "#ffffff";
    const [halo, box, tag, text] = g.children;
    for (const r of [halo, box]) { r.setAttribute("x", X); r.setAttribute("y", Y); r.setAttribute("width", W); r.setAttribute("height", H); }
    box.setAttribute("stroke", color);
    const label = `${v.n} · ${v.summary}`;
    const tw = Math.ceil(textWidth(label)) + 10;
    const th = 20;
    // the label sits above the box, else below it, else inside its top; never past the frame's edges
    let ty = Y - th - 1;
    if (ty < 0) ty = Y + H + th + 1 <= ch ? Y + H + 1 : Y + 1;
    const tx = Math.max(0, Math.min(X - 1, cw - tw));
    tag.setAttribute("x", tx);
    tag.setAttribute("y", ty);
    tag.setAttribute("width", tw);
    tag.setAttribute("height", th);
    tag.setAttribute("fill", color);
    text.setAttribute("x", tx + 5);
    text.setAttribute("y", ty + 14.5);
    text.style.fill = inkFor(color);
    text.textContent = label;
  }
}

function clearOverlay(layer) {
  layer.replaceChildren();
}

// Hover or focus on a box highlights its card and the other way round. `scope` names the two containers.
const hot = { live: null, photo: null };
const HOVER_SCOPES = { live: ["live-overlay", "live-faces"], photo: ["photo-overlay", "photo-faces"] };

function setHot(scope, n) {
  hot[scope] = n;
  applyHot(scope);
}

function applyHot(scope) {
  for (const id of HOVER_SCOPES[scope]) {
    for (const node of $(id).querySelectorAll("[data-face]")) {
      node.classList.toggle("hot", node.dataset.face === hot[scope]);
    }
  }
}

for (const [scope, ids] of Object.entries(HOVER_SCOPES)) {
  for (const id of ids) {
    const root = $(id);
    const faceOf = (e) => e.target.closest && e.target.closest("[data-face]");
    root.addEventListener("pointerover", (e) => { const f = faceOf(e); if (f) setHot(scope, f.dataset.face); });
    root.addEventListener("pointerout", (e) => {
      const f = faceOf(e);
      if (f && !(e.relatedTarget && f.contains(e.relatedTarget))) setHot(scope, null);
    });
    root.addEventListener("focusin", (e) => { const f = faceOf(e); if (f) setHot(scope, f.dataset.face); });
    root.addEventListener("focusout", () => setHot(scope, null));
  }
}

// ------------------------------------------------------------------------------------------ server info (footer)
// The footer's row count is re-read from /health at start, on opening the Mood tab, after a logged photo and
// while live rows are logged (at most once a second), so it never shows a stale "(0 rows)".
const health = { timer: 0, at: 0 };

async function refreshHealth() {
  health.at = performance.now();
  try {
    const h = await apiJson("/health");
    $("server-info").textContent = `emoscope ${h.version} · model ${h.model.backend || "?"}` +
      ` · mood log ${h.mood.logging ? "on" : "off"} (${h.mood.rows} row${h.mood.rows === 1 ? "" : "s"})`;
    if (!h.mood.logging) {
      for (const id of ["live-log", "photo-log"]) { $(id).checked = false; $(id).disabled = true; }
    }
    if (statusScope === "" && $("status").classList.contains("error")) setStatus("");
  } catch (e) {
    setStatus(`Server: ${e.message}`, true);
  }
}

function refreshHealthSoon() {
  if (health.timer) return;
  const wait = Math.max(0, 1000 - (performance.now() - health.at));
  health.timer = setTimeout(() => { health.timer = 0; refreshHealth(); }, wait);
}

// ------------------------------------------------------------------------------------------ live
const live = {
  stream: null, ws: null, inFlight: false, last: null, maxFps: 15, lastSent: 0, timer: 0,
  frameTimes: [], fps: 0, logged: 0, grab: document.createElement("canvas"),
};

function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${API}/stream`;
}

async function startLive() {
  if (live.stream) return;
  $("live-start").disabled = true;
  clearError("live");
  try {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this browser gives no camera access here (it needs https or localhost)");
    }
    live.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
  } catch (e) {
    $("live-start").disabled = false;
    showError("live", `Camera not available: ${e.message}`);
    return;
  }
  const video = $("live-video");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  $("stage-hint").hidden = true;
  $("live-stop").disabled = false;
  openSocket();
}

function openSocket() {
  const protocols = token ? ["emoscope", `token.${token}`] : ["emoscope"];
  const ws = new WebSocket(wsUrl(), protocols);
  live.ws = ws;
  live.inFlight = false;
  ws.onopen = () => { setStatus("Live: connected", false, "live"); sendConfig(); };
  ws.onmessage = (ev) => onLiveMessage(JSON.parse(ev.data));
  ws.onclose = async (ev) => {
    if (live.ws !== ws) return;
    live.ws = null;
    if (!live.stream) return;
    if (ev.code === 1006 && !live.everConnected) {
      // refused during the handshake (missing or bad token, or not allowed)
      const h = await fetch(`${API}/health`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (h.status === 401) { await askToken(); openSocket(); return; }
    }
    if (ev.code !== 1000) showError("live", `Live stream closed${ev.reason ? `: ${ev.reason}` : ""}`);
    stopLive(false);
  };
}

function sendConfig() {
  if (!live.ws || live.ws.readyState !== WebSocket.OPEN) return;
  const frames = Math.max(1, Math.min(300, parseInt($("smile-frames").value, 10) || 10));
  live.ws.send(JSON.stringify({
    type: "config", log: $("live-log").checked, smile_capture: $("smile-on").checked, smile_frames: frames,
  }));
  $("smile-box").hidden = !$("smile-on").checked;
}

function scheduleFrame() {
  clearTimeout(live.timer);
  const wait = Math.max(0, 1000 / live.maxFps - (performance.now() - live.lastSent));
  live.timer = setTimeout(sendFrame, wait);
}

function sendFrame() {
  const video = $("live-video");
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || live.inFlight || !video.videoWidth) {
    if (live.stream) live.timer = setTimeout(sendFrame, 50);
    return;
  }
  const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
  const c = live.grab;
  c.width = Math.round(video.videoWidth * scale);
  c.height = Math.round(video.videoHeight * scale);
  c.getContext("2d").drawImage(video, 0, 0, c.width, c.height);
  live.inFlight = true;
  live.lastSent = performance.now();
  c.toBlob((blob) => {
    if (blob && live.ws === ws && ws.readyState === WebSocket.OPEN) ws.send(blob);
    else live.inFlight = false;
  }, "image/jpeg", 0.75);
}

function onLiveMessage(msg) {
  if (msg.type === "hello") {
    live.everConnected = true;
    live.maxFps = Math.max(1, (msg.limits && msg.limits.max_fps) || 15);
    if (!msg.log_allowed) { $("live-log").checked = false; $("live-log").disabled = true; }
    scheduleFrame();
  } else if (msg.type === "faces") {
    live.inFlight = false;
    live.last = msg;
    clearError("live");
    if (msg.logged) {
      live.logged += msg.logged;
      refreshHealthSoon();
    }
    $("live-logged").textContent = String(live.logged);
    const now = performance.now();
    live.frameTimes.push(now);
    while (live.frameTimes.length && now - live.frameTimes[0] > 2000) live.frameTimes.shift();
    live.fps = live.frameTimes.length > 1 ? (live.frameTimes.length - 1) * 1000 / (now - live.frameTimes[0]) : 0;
    $("live-fps").textContent = live.fps.toFixed(1);
    if (msg.smile) $("smile-progress").value = msg.smile.progress;
    renderLive();
    scheduleFrame();
  } else if (msg.type === "capture") {
    toast("Smile captured!");
    if (!$("panel-smiles").hidden) loadGallery();
  } else if (msg.type === "error") {
    live.inFlight = false;
    const err = msg.error;
    if (err.status !== 429) showError("live", `Live: ${err.message}`);
    if (err.status === 429) live.maxFps = Math.max(1, live.maxFps * 0.8);
    scheduleFrame();
  }
}

/** Draw the last live message: boxes over the video and the cards beside it, from the same faces at once. */
function renderLive() {
  const msg = live.last;
  const video = $("live-video");
  const layer = $("live-overlay");
  if (!msg || !video.videoWidth) return;
  const views = msg.faces.map((f) => faceView(f.track_id, f, f.smoothed)).sort((a, b) => a.n - b.n);
  // the video is letterboxed inside the stage (object-fit: contain): map frame pixels to that rectangle
  const cw = layer.clientWidth;
  const ch = layer.clientHeight;
  const s = Math.min(cw / video.videoWidth, ch / video.videoHeight);
  const geom = { ox: (cw - video.videoWidth * s) / 2, oy: (ch - video.videoHeight * s) / 2,
    k: (video.videoWidth * s) / msg.width, cw, ch };
  renderOverlay(layer, views, geom);
  renderCards($("live-faces"), views, "No faces in view.");
  if (hot.live !== null && !views.some((v) => String(v.n) === hot.live)) hot.live = null;
  applyHot("live");
}

function stopLive(closeSocket = true) {
  clearTimeout(live.timer);
  if (live.stream) for (const t of live.stream.getTracks()) t.stop();
  live.stream = null;
  live.last = null;
  live.everConnected = false;
  if (closeSocket && live.ws) { const ws = live.ws; live.ws = null; ws.close(1000); }
  clearOverlay($("live-overlay"));
  $("live-faces").replaceChildren(el("p", { class: "muted", text: "No faces yet." }));
  $("live-video").srcObject = null;
  $("stage-hint").hidden = false;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
  $("live-fps").textContent = "0.0";
}

$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", () => { stopLive(); setStatus("Live: stopped", false, "live"); });
for (const id of ["live-log", "smile-on", "smile-frames"]) $(id).addEventListener("change", sendConfig);

// ------------------------------------------------------------------------------------------ photo
// The page shows the uploaded file itself and draws the boxes from the JSON; it does not ask for the
// server-drawn picture. A new upload first clears the old result, and a failed one leaves none on screen.
const photo = { seq: 0, url: "", result: null };

function clearPhoto() {
  photo.result = null;
  $("photo-result").hidden = true;
  $("photo-img").removeAttribute("src");
  if (photo.url) URL.revokeObjectURL(photo.url);
  photo.url = "";
  clearOverlay($("photo-overlay"));
  $("photo-faces").replaceChildren();
  $("photo-caption").textContent = "";
  hot.photo = null;
}

async function analyzePhoto(file) {
  if (!file) return;
  const seq = ++photo.seq;
  const log = $("photo-log").checked ? 1 : 0;
  const form = new FormData();
  form.append("file", file, file.name || "photo");
  clearPhoto();
  clearError("photo");
  $("photo-busy").hidden = false;
  try {
    const r = await apiJson(`/analyze?log=${log}`, { method: "POST", body: form });
    if (seq !== photo.seq) return;
    const img = $("photo-img");
    photo.url = URL.createObjectURL(file);
    img.src = photo.url;
    try {
      await img.decode();
    } catch (_) {
      throw new Error(`this browser cannot show ${r.image.type}; the faces are listed below`);
    } finally {
      if (seq === photo.seq) showPhotoResult(r);
    }
    if (seq !== photo.seq) return;
    setStatus(`Photo analysed: ${r.faces.length} face${r.faces.length === 1 ? "" : "s"}`, false, "photo");
  } catch (e) {
    if (seq !== photo.seq) return;
    if (!photo.result) clearPhoto();
    showError("photo", `Photo ${file.name ? `${file.name} ` : ""}not analysed: ${e.message}`);
  } finally {
    if (seq === photo.seq) $("photo-busy").hidden = true;
  }
}

function showPhotoResult(r) {
  photo.result = r;
  const views = r.faces.map((f, i) => faceView(i + 1, f, f.probs));
  const summary = views.length ? views.map((v) => `face ${v.n}: ${v.summary}`).join(", ") : "no face found";
  const img = $("photo-img");
  img.alt = `Your photo with ${views.length} face${views.length === 1 ? "" : "s"} marked: ${summary}`;
  $("photo-caption").textContent =
    `${r.image.width}×${r.image.height} ${r.image.type.split("/")[1].toUpperCase()}, ${summary}` +
    `, ${Math.round(r.elapsed_ms)} ms${r.logged ? `, ${r.logged} mood row${r.logged === 1 ? "" : "s"} logged` : ""}`;
  $("photo-result").hidden = false;
  renderCards($("photo-faces"), views, "No face found in this photo.");
  drawPhotoOverlay();
  if (r.logged) refreshHealth();
}

function drawPhotoOverlay() {
  const r = photo.result;
  const img = $("photo-img");
  if (!r || !img.clientWidth) return;
  const views = r.faces.map((f, i) => faceView(i + 1, f, f.probs));
  renderOverlay($("photo-overlay"), views, { ox: 0, oy: 0, k: img.clientWidth / r.image.width,
    cw: img.clientWidth, ch: img.clientHeight });
  applyHot("photo");
}

new ResizeObserver(drawPhotoOverlay).observe($("photo-img"));
new ResizeObserver(() => renderLive()).observe($("stage"));

const drop = $("drop");
$("photo-file").addEventListener("change", (e) => analyzePhoto(e.target.files[0]));
for (const ev of ["dragenter", "dragover"]) {
  drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  const f = e.dataTransfer && e.dataTransfer.files[0];
  if (f) analyzePhoto(f);
});
document.addEventListener("paste", (e) => {
  if ($("panel-photo").hidden) return;
  const f = Array.from(e.clipboardData ? e.clipboardData.files : []).find((x) => x.type.startsWith("image/"));
  if (f) analyzePhoto(f);
});

// ------------------------------------------------------------------------------------------ mood
function localDayStart(offsetDays = 0) {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  d.setDate(d.getDate() + offsetDays);
  return d;
}

function moodQuery(bucket, from, to) {
  const tz = -from.getTimezoneOffset();
  const q = new URLSearchParams({ bucket, from: from.toISOString(), to: to.toISOString(), tz_offset: String(tz) });
  return apiJson(`/mood?${q}`);
}

function renderLegend() {
  const lg = $("legend");
  lg.replaceChildren(...EMOTIONS.map((e) => {
    const sw = el("span", { class: "swatch" });
    sw.style.background = COLORS[e];
    return el("span", {}, sw, e);
  }));
}

// Charts are drawn at the pixel width of their box (and redrawn when it changes), so their text stays 12 px on a
// phone instead of being scaled down with a wide viewBox. Colours of lines and text come from style.css.
function chartWidth(id) {
  return Math.max(240, Math.floor($(id).clientWidth || 480));
}

function chartTimeline(data, dayStart, W) {
  const pad = 22;
  const plot = W - 2 * pad;
  const top = 14;
  const barH = 44;
  const H = top + barH + 26;
  const xOf = (minute) => pad + (minute / 1440) * plot;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "timeline" });
  const counts = {};
  for (const b of data.buckets) counts[b.dominant] = (counts[b.dominant] || 0) + 1;
  const most = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];
  const label = data.buckets.length
    ? `Today's timeline: ${data.buckets.length} minutes with data; most often ${most[0]} (${most[1]} minutes).`
    : "Today's timeline: no data yet.";
  s.append(svg("title", {}, label));
  s.append(svg("rect", { class: "track", x: pad, y: top, width: plot, height: barH }));
  const step = plot / 8 >= 48 ? 3 : 6; // an "18:00" label needs about 40 px
  for (let h = 0; h <= 24; h += step) {
    const x = xOf(h * 60);
    s.append(svg("line", { class: h % 24 ? "grid" : "axis", x1: x, x2: x, y1: top, y2: top + barH + 5 }));
    s.append(svg("text", { x, y: H - 5, "text-anchor": "middle" }, `${String(h).padStart(2, "0")}:00`));
  }
  const nowMin = (Date.now() - dayStart.getTime()) / 60000;
  if (nowMin >= 0 && nowMin <= 1440) {
    const x = xOf(nowMin);
    const now = svg("path", { class: "now", d: `M${x - 6} 0 L${x + 6} 0 L${x} ${top - 2} Z` });
    now.append(svg("title", {}, "now"));
    s.append(now);
  }
  const w = Math.max(2, plot / 1440);
  for (const b of data.buckets) {
    const minute = Math.round((b.t * 1000 - dayStart.getTime()) / 60000);
    const r = svg("rect", { x: xOf(minute), y: top, width: w, height: barH, fill: COLORS[b.dominant] });
    const at = new Date(b.t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    r.append(svg("title", {}, `${at}: ${b.dominant}, ${b.n} rows`));
    s.append(r);
  }
  return s;
}

function chartBars(items, title, W, opts = {}) {
  // items: [{label, share (0..1), n}]
  const n = items.length;
  const H = 190;
  const left = 38;
  const bottom = 22;
  const top = 18;
  const plotH = H - bottom - top;
  const slot = (W - left - 6) / n;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" });
  const withData = items.filter((i) => i.n > 0);
  s.append(svg("title", {}, `${title}: ${withData.length ? withData.map((i) => `${i.label} ${pct(i.share)}`).join(", ") : "no data yet"}.`));
  for (const g of [0, 0.5, 1]) {
    const y = top + plotH * (1 - g);
    s.append(svg("line", { class: g ? "grid" : "axis", x1: left, x2: W - 4, y1: y, y2: y }));
    s.append(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, pct(g)));
  }
  // label every `every`-th slot, so that labels keep about `opts.labelPx` pixels each
  const every = Math.max(opts.every || 1, Math.ceil((opts.labelPx || 0) / slot));
  items.forEach((it, i) => {
    const x = left + i * slot + slot * 0.15;
    const w = slot * 0.7;
    if (it.n > 0) {
      const h = Math.max(1, plotH * it.share);
      const r = svg("rect", { class: "happy", x, y: top + plotH - h, width: w, height: h, fill: COLORS.happy });
      r.append(svg("title", {}, `${it.label}: ${pct(it.share)} happy of ${it.n} rows`));
      s.append(r);
      if (opts.values) s.append(svg("text", { class: "value", x: x + w / 2, y: top + plotH - h - 4, "text-anchor": "middle" }, pct(it.share)));
    }
    if (i % every === 0) s.append(svg("text", { x: x + w / 2, y: H - 6, "text-anchor": "middle" }, it.label));
  });
  return s;
}

const mood = { timer: 0, data: null, width: 0 };

function drawMood() {
  const d = mood.data;
  if (!d || $("panel-mood").hidden) return;
  mood.width = $("panel-mood").clientWidth;
  $("chart-timeline").replaceChildren(chartTimeline(d.minutes, d.today, chartWidth("chart-timeline")));
  $("chart-hours").replaceChildren(chartBars(d.hourItems, "Happy share per hour today", chartWidth("chart-hours"),
    { every: 3, labelPx: 30 }));
  $("chart-days").replaceChildren(chartBars(d.dayItems, "Happy share per day, last 7 days", chartWidth("chart-days"),
    { values: true, labelPx: 50 }));
}

async function loadMood() {
  clearTimeout(mood.timer);
  const today = localDayStart(0);
  const tomorrow = localDayStart(1);
  const weekStart = localDayStart(-6);
  try {
    const [minutes, hours, days] = await Promise.all([
      moodQuery("minute", today, tomorrow), moodQuery("hour", today, tomorrow), moodQuery("day", weekStart, tomorrow),
    ]);
    const byHour = new Map(hours.buckets.map((b) => [new Date(b.t * 1000).getHours(), b]));
    const hourItems = Array.from({ length: 24 }, (_, h) => {
      const b = byHour.get(h);
      return { label: String(h).padStart(2, "0"), share: b ? b.happy_share : 0, n: b ? b.n : 0 };
    });
    const byDay = new Map(days.buckets.map((b) => [new Date(b.t * 1000).toDateString(), b]));
    const dayItems = Array.from({ length: 7 }, (_, i) => {
      const d = localDayStart(i - 6);
      const b = byDay.get(d.toDateString());
      return { label: d.toLocaleDateString([], { weekday: "short", day: "numeric" }), share: b ? b.happy_share : 0,
        n: b ? b.n : 0, dominant: b ? b.dominant : "" };
    });
    mood.data = { minutes, today, hourItems, dayItems };
    drawMood();
    const tbody = $("mood-table").tBodies[0];
    tbody.replaceChildren(...dayItems.map((d) => el("tr", {}, el("td", { text: d.label }), el("td", { text: String(d.n) }),
      el("td", { text: d.dominant || "–" }), el("td", { text: d.n ? pct(d.share) : "–" }))));
    const todayN = hours.total;
    const todayHappy = hours.buckets.reduce((a, b) => a + b.counts.happy, 0);
    const weekN = days.total;
    $("mood-summary").textContent = todayN
      ? `Today: ${todayN} mood rows, happy ${pct(todayHappy / todayN)} of the time. Last 7 days: ${weekN} rows.`
      : `No mood rows today yet. Last 7 days: ${weekN} rows.`;
    clearError("mood");
  } catch (e) {
    showError("mood", `Mood: ${e.message}`);
  }
  if (!$("panel-mood").hidden) mood.timer = setTimeout(loadMood, 30000);
}

new ResizeObserver(() => { if ($("panel-mood").clientWidth !== mood.width) drawMood(); }).observe($("panel-mood"));

async function exportCsv() {
  try {
    const blob = await (await api("/mood.csv")).blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: `emoscope-mood-${new Date().toISOString().slice(0, 10)}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 5000);
  } catch (e) {
    showError("mood", `Export: ${e.message}`);
  }
}

$("mood-refresh").addEventListener("click", loadMood);
$("mood-export").addEventListener("click", exportCsv);
onShow.mood = () => { loadMood(); refreshHealth(); };

// ------------------------------------------------------------------------------------------ smiles
let galleryUrls = [];
async function loadGallery() {
  try {
    const { captures } = await apiJson("/captures");
    for (const u of galleryUrls) URL.revokeObjectURL(u);
    galleryUrls = [];
    const items = await Promise.all(captures.map(async (c) => {
      const url = URL.createObjectURL(await (await api(`/captures/${c.id}`)).blob());
      galleryUrls.push(url);
      const when = new Date(c.time).toLocaleString();
      const del = el("button", { class: "danger", "aria-label": `Delete capture from ${when}`, text: "Delete" });
      del.addEventListener("click", async () => {
        try { await api(`/captures/${c.id}`, { method: "DELETE" }); loadGallery(); } catch (e) { showError("smiles", `Delete: ${e.message}`); }
      });
      return el("li", {}, el("img", { src: url, alt: `Smile capture, ${c.n_faces} face(s), ${when}` }),
        el("div", { class: "meta" }, el("span", { text: when }), del));
    }));
    const g = $("gallery");
    g.replaceChildren(...items);
    if (!items.length) g.append(el("li", { class: "muted", text: "No captures yet." }));
    clearError("smiles");
  } catch (e) {
    showError("smiles", `Smiles: ${e.message}`);
  }
}
$("smiles-refresh").addEventListener("click", loadGallery);
onShow.smiles = loadGallery;

// ------------------------------------------------------------------------------------------ start
async function init() {
  renderLegend();
  const wanted = tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`);
  if (wanted) selectTab(wanted, false);
  await refreshHealth();
}
window.addEventListener("pagehide", () => stopLive());
init();
