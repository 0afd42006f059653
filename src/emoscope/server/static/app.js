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

// ------------------------------------------------------------------------------------------ status
let statusTimer = 0;
function setStatus(text, isError = false) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", isError);
  clearTimeout(statusTimer);
  if (text && !isError) statusTimer = setTimeout(() => { s.textContent = ""; }, 6000);
}

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

// ------------------------------------------------------------------------------------------ bars (DOM)
function faceCard(title, probs, label) {
  const bars = el("div", { class: "bars" });
  for (const e of EMOTIONS) {
    if (!(e in probs)) continue;
    const fill = el("span");
    fill.style.width = pct(probs[e]);
    fill.style.background = COLORS[e];
    const cls = e === label ? "best" : "";
    bars.append(el("span", { class: cls, text: e }), el("div", { class: "bar" }, fill),
      el("span", { class: `pct ${cls}`, text: pct(probs[e]) }));
  }
  const sw = el("span", { class: "swatch" });
  sw.style.background = COLORS[label] || "#fff";
  return el("div", { class: "face-card" }, el("h4", {}, sw, title), bars);
}

// ------------------------------------------------------------------------------------------ live
const live = {
  stream: null, ws: null, inFlight: false, last: null, maxFps: 15, lastSent: 0, timer: 0,
  frameTimes: [], fps: 0, logged: 0, listUpdated: 0, grab: document.createElement("canvas"),
};

function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${API}/stream`;
}

async function startLive() {
  if (live.stream) return;
  $("live-start").disabled = true;
  try {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this browser gives no camera access here (it needs https or localhost)");
    }
    live.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
    });
  } catch (e) {
    $("live-start").disabled = false;
    setStatus(`Camera not available: ${e.message}`, true);
    return;
  }
  const video = $("live-video");
  video.srcObject = live.stream;
  await video.play().catch(() => {});
  $("stage-hint").hidden = true;
  $("live-stop").disabled = false;
  openSocket();
  requestAnimationFrame(drawOverlay);
}

function openSocket() {
  const protocols = token ? ["emoscope", `token.${token}`] : ["emoscope"];
  const ws = new WebSocket(wsUrl(), protocols);
  live.ws = ws;
  live.inFlight = false;
  ws.onopen = () => { setStatus("Live: connected"); sendConfig(); };
  ws.onmessage = (ev) => onLiveMessage(JSON.parse(ev.data));
  ws.onclose = async (ev) => {
    if (live.ws !== ws) return;
    live.ws = null;
    if (!live.stream) return;
    if (ev.code === 1006 && !live.everConnected) {
      // refused during the handshake (missing or bad token, or not allowed)
      const health = await fetch(`${API}/health`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (health.status === 401) { await askToken(); openSocket(); return; }
    }
    setStatus(`Live stream closed${ev.reason ? `: ${ev.reason}` : ""}`, ev.code !== 1000);
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
    live.logged += msg.logged || 0;
    $("live-logged").textContent = String(live.logged);
    const now = performance.now();
    live.frameTimes.push(now);
    while (live.frameTimes.length && now - live.frameTimes[0] > 2000) live.frameTimes.shift();
    live.fps = live.frameTimes.length > 1 ? (live.frameTimes.length - 1) * 1000 / (now - live.frameTimes[0]) : 0;
    $("live-fps").textContent = live.fps.toFixed(1);
    if (msg.smile) $("smile-progress").value = msg.smile.progress;
    if (now - live.listUpdated > 300) { live.listUpdated = now; renderLiveList(msg); }
    scheduleFrame();
  } else if (msg.type === "capture") {
    toast("Smile captured!");
    if (!$("panel-smiles").hidden) loadGallery();
  } else if (msg.type === "error") {
    live.inFlight = false;
    const err = msg.error;
    if (err.status !== 429) setStatus(`Live: ${err.message}`, true);
    if (err.status === 429) live.maxFps = Math.max(1, live.maxFps * 0.8);
    scheduleFrame();
  }
}

function renderLiveList(msg) {
  const box = $("live-faces");
  box.replaceChildren();
  if (!msg.faces.length) { box.append(el("p", { class: "muted", text: "No faces in view." })); return; }
  for (const f of msg.faces) {
    box.append(faceCard(`Face #${f.track_id}: ${f.label}`, f.smoothed, f.label));
  }
}

function drawOverlay() {
  if (!live.stream) return;
  const video = $("live-video");
  const canvas = $("live-overlay");
  const dpr = window.devicePixelRatio || 1;
  const cw = canvas.clientWidth;
  const ch = canvas.clientHeight;
  if (canvas.width !== Math.round(cw * dpr) || canvas.height !== Math.round(ch * dpr)) {
    canvas.width = Math.round(cw * dpr);
    canvas.height = Math.round(ch * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cw, ch);
  const msg = live.last;
  if (msg && video.videoWidth) {
    // the video is letterboxed inside the stage (object-fit: contain): map frame pixels to that rectangle
    const s = Math.min(cw / video.videoWidth, ch / video.videoHeight);
    const ox = (cw - video.videoWidth * s) / 2;
    const oy = (ch - video.videoHeight * s) / 2;
    const k = (video.videoWidth / msg.width) * s;
    for (const f of msg.faces) drawFace(ctx, f, ox, oy, k, cw, ch);
    ctx.font = "600 13px system-ui, sans-serif";
    ctx.fillStyle = "rgba(0,0,0,.6)";
    ctx.fillRect(ox + 6, oy + 6, 78, 20);
    ctx.fillStyle = "#fff";
    ctx.fillText(`${live.fps.toFixed(1)} fps`, ox + 12, oy + 21);
  }
  requestAnimationFrame(drawOverlay);
}

function drawFace(ctx, f, ox, oy, k, cw, ch) {
  const [x, y, w, h] = f.box;
  const X = ox + x * k;
  const Y = oy + y * k;
  const W = w * k;
  const H = h * k;
  const color = COLORS[f.label] || "#fff";
  ctx.lineWidth = 3;
  ctx.strokeStyle = "#000";
  ctx.strokeRect(X, Y, W, H);
  ctx.lineWidth = 2;
  ctx.strokeStyle = color;
  ctx.strokeRect(X, Y, W, H);
  const p = f.smoothed[f.label] || 0;
  const text = `#${f.track_id} ${f.label} ${pct(p)}`;
  ctx.font = "600 14px system-ui, sans-serif";
  const tw = ctx.measureText(text).width + 10;
  const ty = Y > 24 ? Y - 22 : Y + H + 2;
  ctx.fillStyle = color;
  ctx.fillRect(X - 1, ty, tw, 20);
  ctx.fillStyle = "#111";
  ctx.fillText(text, X + 4, ty + 15);
  // probability bars beside the box (right side, or left when there is no room)
  const labelW = 60;
  const bw = 80;
  const rowH = 13;
  let bx = X + W + 6;
  if (bx + labelW + bw + 4 > cw) bx = X - labelW - bw - 10;
  if (bx < 0) return;
  const by = Math.min(Math.max(Y, 0), ch - rowH * EMOTIONS.length);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "rgba(0,0,0,.6)";
  ctx.fillRect(bx, by, labelW + bw + 4, rowH * EMOTIONS.length);
  EMOTIONS.forEach((e, i) => {
    const v = f.smoothed[e] || 0;
    const yy = by + i * rowH;
    ctx.fillStyle = COLORS[e];
    ctx.fillRect(bx + labelW, yy + 2, Math.max(1, bw * v), rowH - 4);
    ctx.fillStyle = "#fff";
    ctx.fillText(e, bx + 4, yy + 10);
  });
}

function stopLive(closeSocket = true) {
  clearTimeout(live.timer);
  if (live.stream) for (const t of live.stream.getTracks()) t.stop();
  live.stream = null;
  live.last = null;
  live.everConnected = false;
  if (closeSocket && live.ws) { const ws = live.ws; live.ws = null; ws.close(1000); }
  const canvas = $("live-overlay");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  $("live-video").srcObject = null;
  $("stage-hint").hidden = false;
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
  $("live-fps").textContent = "0.0";
}

$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", () => { stopLive(); setStatus("Live: stopped"); });
for (const id of ["live-log", "smile-on", "smile-frames"]) $(id).addEventListener("change", sendConfig);

// ------------------------------------------------------------------------------------------ photo
async function analyzePhoto(file) {
  if (!file) return;
  const log = $("photo-log").checked ? 1 : 0;
  const form = new FormData();
  form.append("file", file, file.name || "photo");
  setStatus(`Analysing ${file.name || "photo"}…`);
  try {
    const r = await apiJson(`/analyze?annotate=1&log=${log}`, { method: "POST", body: form });
    const a = r.annotated;
    const img = $("photo-img");
    img.src = `data:${a.mime};base64,${a.data}`;
    const summary = r.faces.length
      ? r.faces.map((f, i) => `face ${i + 1}: ${f.label} (${pct(f.probs[f.label])})`).join(", ")
      : "no face found";
    img.alt = `Your photo with ${r.faces.length} face${r.faces.length === 1 ? "" : "s"} marked: ${summary}`;
    $("photo-caption").textContent =
      `${r.image.width}×${r.image.height} ${r.image.type.split("/")[1].toUpperCase()}, ${summary}` +
      `, ${Math.round(r.elapsed_ms)} ms${r.logged ? `, ${r.logged} mood row(s) logged` : ""}`;
    $("photo-result").hidden = false;
    const box = $("photo-faces");
    box.replaceChildren();
    r.faces.forEach((f, i) => box.append(faceCard(`Face ${i + 1}: ${f.label}`, f.probs, f.label)));
    setStatus(`Photo analysed: ${r.faces.length} face(s)`);
  } catch (e) {
    setStatus(`Photo: ${e.message}`, true);
  }
}

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

function chartTimeline(data, dayStart) {
  const pad = 28;
  const W = 1440;
  const top = 14;
  const barH = 44;
  const H = top + barH + 30;
  const s = svg("svg", { viewBox: `0 0 ${W + 2 * pad} ${H}`, role: "img", class: "timeline" });
  const counts = {};
  for (const b of data.buckets) counts[b.dominant] = (counts[b.dominant] || 0) + 1;
  const most = Object.entries(counts).sort((a, b) => b[1] - a[1])[0];
  const label = data.buckets.length
    ? `Today's timeline: ${data.buckets.length} minutes with data; most often ${most[0]} (${most[1]} minutes).`
    : "Today's timeline: no data yet.";
  s.append(svg("title", {}, label));
  s.append(svg("rect", { x: pad, y: top, width: W, height: barH, fill: "#eceff3" }));
  for (let h = 0; h <= 24; h += 3) {
    const x = pad + h * 60;
    s.append(svg("line", { x1: x, x2: x, y1: top, y2: top + barH + 6, stroke: h % 24 ? "#c9ced8" : "#6b7280" }));
    s.append(svg("text", { x, y: H - 4, "text-anchor": "middle" }, `${String(h).padStart(2, "0")}:00`));
  }
  const nowMin = (Date.now() - dayStart.getTime()) / 60000;
  if (nowMin >= 0 && nowMin <= 1440) {
    const x = pad + nowMin;
    const now = svg("path", { d: `M${x - 7} 0 L${x + 7} 0 L${x} ${top - 2} Z`, fill: "#16181d" });
    now.append(svg("title", {}, "now"));
    s.append(now);
  }
  for (const b of data.buckets) {
    const minute = Math.round((b.t * 1000 - dayStart.getTime()) / 60000);
    const r = svg("rect", { x: pad + minute, y: top, width: 3, height: barH, fill: COLORS[b.dominant] });
    const at = new Date(b.t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    r.append(svg("title", {}, `${at}: ${b.dominant}, ${b.n} rows`));
    s.append(r);
  }
  return s;
}

function chartBars(items, title, opts = {}) {
  // items: [{label, share (0..1 or null), n}]
  const n = items.length;
  const W = 480;
  const H = 190;
  const left = 34;
  const bottom = 22;
  const top = 16;
  const plotH = H - bottom - top;
  const slot = (W - left - 6) / n;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  const withData = items.filter((i) => i.n > 0);
  s.append(svg("title", {}, `${title}: ${withData.length ? withData.map((i) => `${i.label} ${pct(i.share)}`).join(", ") : "no data yet"}.`));
  for (const g of [0, 0.5, 1]) {
    const y = top + plotH * (1 - g);
    s.append(svg("line", { x1: left, x2: W - 4, y1: y, y2: y, stroke: g ? "#d5d9e0" : "#6b7280" }));
    s.append(svg("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, pct(g)));
  }
  items.forEach((it, i) => {
    const x = left + i * slot + slot * 0.15;
    const w = slot * 0.7;
    if (it.n > 0) {
      const h = Math.max(1, plotH * it.share);
      const r = svg("rect", { x, y: top + plotH - h, width: w, height: h, fill: COLORS.happy, stroke: "#8a6d00" });
      r.append(svg("title", {}, `${it.label}: ${pct(it.share)} happy of ${it.n} rows`));
      s.append(r);
      if (opts.values) s.append(svg("text", { class: "value", x: x + w / 2, y: top + plotH - h - 3, "text-anchor": "middle" }, pct(it.share)));
    }
    if (!opts.every || i % opts.every === 0) {
      s.append(svg("text", { x: x + w / 2, y: H - 6, "text-anchor": "middle" }, it.label));
    }
  });
  return s;
}

let moodTimer = 0;
async function loadMood() {
  clearTimeout(moodTimer);
  const today = localDayStart(0);
  const tomorrow = localDayStart(1);
  const weekStart = localDayStart(-6);
  try {
    const [minutes, hours, days] = await Promise.all([
      moodQuery("minute", today, tomorrow), moodQuery("hour", today, tomorrow), moodQuery("day", weekStart, tomorrow),
    ]);
    $("chart-timeline").replaceChildren(chartTimeline(minutes, today));
    const byHour = new Map(hours.buckets.map((b) => [new Date(b.t * 1000).getHours(), b]));
    const hourItems = Array.from({ length: 24 }, (_, h) => {
      const b = byHour.get(h);
      return { label: String(h).padStart(2, "0"), share: b ? b.happy_share : 0, n: b ? b.n : 0 };
    });
    $("chart-hours").replaceChildren(chartBars(hourItems, "Happy share per hour today", { every: 3 }));
    const byDay = new Map(days.buckets.map((b) => [new Date(b.t * 1000).toDateString(), b]));
    const dayItems = Array.from({ length: 7 }, (_, i) => {
      const d = localDayStart(i - 6);
      const b = byDay.get(d.toDateString());
      return { label: d.toLocaleDateString([], { weekday: "short", day: "numeric" }), share: b ? b.happy_share : 0,
        n: b ? b.n : 0, dominant: b ? b.dominant : "" };
    });
    $("chart-days").replaceChildren(chartBars(dayItems, "Happy share per day, last 7 days", { values: true }));
    const tbody = $("mood-table").tBodies[0];
    tbody.replaceChildren(...dayItems.map((d) => el("tr", {}, el("td", { text: d.label }), el("td", { text: String(d.n) }),
      el("td", { text: d.dominant || "–" }), el("td", { text: d.n ? pct(d.share) : "–" }))));
    const todayN = hours.total;
    const todayHappy = hours.buckets.reduce((a, b) => a + b.counts.happy, 0);
    const weekN = days.total;
    $("mood-summary").textContent = todayN
      ? `Today: ${todayN} mood rows, happy ${pct(todayHappy / todayN)} of the time. Last 7 days: ${weekN} rows.`
      : `No mood rows today yet. Last 7 days: ${weekN} rows.`;
  } catch (e) {
    setStatus(`Mood: ${e.message}`, true);
  }
  if (!$("panel-mood").hidden) moodTimer = setTimeout(loadMood, 30000);
}

async function exportCsv() {
  try {
    const blob = await (await api("/mood.csv")).blob();
    const a = el("a", { href: URL.createObjectURL(blob), download: `emoscope-mood-${new Date().toISOString().slice(0, 10)}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 5000);
  } catch (e) {
    setStatus(`Export: ${e.message}`, true);
  }
}

$("mood-refresh").addEventListener("click", loadMood);
$("mood-export").addEventListener("click", exportCsv);
onShow.mood = loadMood;

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
        try { await api(`/captures/${c.id}`, { method: "DELETE" }); loadGallery(); } catch (e) { setStatus(e.message, true); }
      });
      return el("li", {}, el("img", { src: url, alt: `Smile capture, ${c.n_faces} face(s), ${when}` }),
        el("div", { class: "meta" }, el("span", { text: when }), del));
    }));
    const g = $("gallery");
    g.replaceChildren(...items);
    if (!items.length) g.append(el("li", { class: "muted", text: "No captures yet." }));
  } catch (e) {
    setStatus(`Smiles: ${e.message}`, true);
  }
}
$("smiles-refresh").addEventListener("click", loadGallery);
onShow.smiles = loadGallery;

// ------------------------------------------------------------------------------------------ start
async function init() {
  renderLegend();
  const wanted = tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`);
  if (wanted) selectTab(wanted, false);
  try {
    const h = await apiJson("/health");
    $("server-info").textContent = `emoscope ${h.version} · model ${h.model.backend || "?"}` +
      ` · mood log ${h.mood.logging ? "on" : "off"} (${h.mood.rows} rows)`;
    if (!h.mood.logging) {
      for (const id of ["live-log", "photo-log"]) { $(id).checked = false; $(id).disabled = true; }
    }
  } catch (e) {
    setStatus(`Server: ${e.message}`, true);
  }
}
window.addEventListener("pagehide", () => stopLive());
init();
