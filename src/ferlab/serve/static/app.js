// ferlab web page: live camera over a WebSocket, photo upload, probability bars, emotion
// timeline and the ambient light swatch. Plain JavaScript, served by ferlab; no external assets.
"use strict";

const state = {
  labels: [],
  colors: {},          // emotion -> "rgb(r, g, b)" from /v1/light
  auth: false,
  ws: null,
  stream: null,
  timer: null,
  sent: 0,
  history: [],         // [{t, probs: {label: p}}] for the timeline
  frameTimes: [],      // arrival times of answers, for the frame rate
};

const $ = (id) => document.getElementById(id);
const FRAME_INTERVAL_MS = 100;   // the page offers up to 10 frames/s; the server drops stale ones
const TIMELINE_SECONDS = 30;

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

function apiKey() {
  return $("api-key").value.trim();
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (apiKey()) headers.set("X-API-Key", apiKey());
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const reason = body && body.message ? body.message : response.statusText;
    const error = new Error(`${response.status}: ${reason}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function rgb(c) {
  return `rgb(${c.r}, ${c.g}, ${c.b})`;
}

function colorOf(label) {
  return state.colors[label] || "#888";
}

// ------------------------------------------------------------------ set-up

async function loadModel() {
  const health = await api("/health");
  state.auth = health.auth;
  $("key-box").hidden = !health.auth;
  if (health.auth) {
    if (!apiKey()) $("api-key").value = localStorage.getItem("ferlab-api-key") || "";
    if (!apiKey()) {
      $("model").textContent = "enter the server's API key";
      return;
    }
  }
  const [model, light] = await Promise.all([api("/v1/models"), api("/v1/light")]);
  state.labels = model.labels;
  for (const [name, c] of Object.entries(light.colors)) state.colors[name] = rgb(c);
  const acc = Object.entries(model.accuracy)
    .map(([split, a]) => `${split} ${(100 * a).toFixed(1)} %`)
    .join(", ");
  $("model").textContent = `model ${model.name}` + (acc ? ` · accuracy ${acc}` : "");
  drawLegend();
  showMessage("");
}

function drawLegend() {
  const legend = $("legend");
  legend.replaceChildren();
  for (const label of state.labels) {
    const item = document.createElement("span");
    item.textContent = label;
    item.style.setProperty("--c", colorOf(label));
    legend.append(item);
  }
}

function selectTab(name) {
  const camera = name === "camera";
  $("tab-camera").setAttribute("aria-selected", String(camera));
  $("tab-photo").setAttribute("aria-selected", String(!camera));
  $("camera-view").hidden = !camera;
  $("photo-view").hidden = camera;
  if (!camera) stopCamera();
}

// ------------------------------------------------------------------ faces, bars, light

function renderFaces(faces, explained = {}) {
  const box = $("faces");
  box.replaceChildren();
  if (!faces.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = "none";
    box.append(none);
    return;
  }
  for (const face of faces) {
    const card = document.createElement("div");
    card.className = "face";
    card.dataset.faceId = face.face_id;
    const title = document.createElement("div");
    title.className = "face-title";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = face.label;
    title.append(`#${face.face_id} `, label);
    card.append(title);
    const sorted = Object.entries(face.scores).sort((a, b) => b[1] - a[1]);
    for (const [name, p] of sorted) {
      const row = document.createElement("div");
      row.className = "bar";
      const text = document.createElement("span");
      text.textContent = name;
      const track = document.createElement("div");
      track.className = "bar-track";
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      fill.style.background = colorOf(name);
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = `${Math.round(100 * p)} %`;
      row.append(text, track, value);
      card.append(row);
    }
    if (explained[face.face_id]) {
      const img = document.createElement("img");
      img.alt = `Grad-CAM heat map of face ${face.face_id}`;
      img.src = explained[face.face_id];
      card.append(img);
    }
    box.append(card);
  }
}

function showLight(light) {
  const swatch = $("swatch");
  swatch.style.backgroundColor = rgb(light);
  swatch.dataset.rgb = `${light.r},${light.g},${light.b}`;
  $("swatch-hex").textContent = `${light.hex}  (r ${light.r}, g ${light.g}, b ${light.b})`;
}

function drawBoxes(canvas, faces, width, height) {
  const ctx = canvas.getContext("2d");
  const sx = canvas.width / width;
  const sy = canvas.height / height;
  const font = Math.max(12, Math.round(canvas.width / 40));
  ctx.lineWidth = Math.max(2, canvas.width / 320);
  ctx.font = `600 ${font}px system-ui, sans-serif`;
  for (const face of faces) {
    const [x, y, w, h] = face.box;
    const color = colorOf(face.label);
    ctx.strokeStyle = color;
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    const text = `#${face.face_id} ${face.label} ${Math.round(100 * face.scores[face.label])}%`;
    const tw = ctx.measureText(text).width + 8;
    const ty = Math.max(0, y * sy - font - 6);
    ctx.fillStyle = color;
    ctx.fillRect(x * sx, ty, tw, font + 6);
    ctx.fillStyle = "#111";
    ctx.fillText(text, x * sx + 4, ty + font);
  }
}

// ------------------------------------------------------------------ timeline

function recordTimeline(faces) {
  const now = performance.now() / 1000;
  let probs = null;
  if (faces.length) {
    probs = {};
    for (const label of state.labels) {
      probs[label] = faces.reduce((sum, f) => sum + (f.scores[label] || 0), 0) / faces.length;
    }
  }
  state.history.push({ t: now, probs });
  while (state.history.length && state.history[0].t < now - TIMELINE_SECONDS) state.history.shift();
  drawTimeline(now);
}

function drawTimeline(now) {
  const canvas = $("timeline");
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = "#3a404b";
  ctx.lineWidth = 1;
  for (const level of [0.25, 0.5, 0.75]) {
    ctx.beginPath();
    ctx.moveTo(0, height * (1 - level));
    ctx.lineTo(width, height * (1 - level));
    ctx.stroke();
  }
  const xOf = (t) => width * (1 - (now - t) / TIMELINE_SECONDS);
  ctx.lineWidth = 2;
  for (const label of state.labels) {
    ctx.strokeStyle = colorOf(label);
    ctx.beginPath();
    let drawing = false;
    for (const point of state.history) {
      if (!point.probs) {
        drawing = false;  // no face: a gap in the line
        continue;
      }
      const x = xOf(point.t);
      const y = height * (1 - point.probs[label]);
      if (drawing) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      drawing = true;
    }
    ctx.stroke();
  }
}

// ------------------------------------------------------------------ camera mode

// The key never goes in the URL (logs and history keep URLs): it is the stream's first message.
function streamUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/v1/stream`;
}

async function startCamera() {
  showMessage("");
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showMessage("This browser gives no camera access here (it needs https or localhost).");
    return;
  }
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (e) {
    showMessage(`Camera not available: ${e.message}`);
    return;
  }
  const video = $("video");
  video.srcObject = state.stream;
  await video.play();
  $("start").disabled = true;
  $("stop").disabled = false;
  state.history = [];
  state.sent = 0;
  const ws = new WebSocket(streamUrl());
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onmessage = (event) => onStreamMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (state.ws === ws && event.code !== 1000) {
      showMessage(`Stream closed (${event.code}${event.reason ? ": " + event.reason : ""}).`);
      stopCamera();
    }
  };
  ws.onopen = () => {
    if (apiKey()) ws.send(JSON.stringify({ type: "auth", api_key: apiKey() }));
    state.timer = setInterval(sendFrame, FRAME_INTERVAL_MS);
  };
}

function stopCamera() {
  clearInterval(state.timer);
  state.timer = null;
  if (state.ws) {
    const ws = state.ws;
    state.ws = null;
    ws.close(1000);
  }
  if (state.stream) {
    for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
  }
  $("start").disabled = false;
  $("stop").disabled = true;
}

const grabCanvas = document.createElement("canvas");

function sendFrame() {
  const ws = state.ws;
  const video = $("video");
  // Only when the socket has sent the previous frame: a slow network never queues frames here.
  if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 0 || !video.videoWidth) return;
  grabCanvas.width = video.videoWidth;
  grabCanvas.height = video.videoHeight;
  grabCanvas.getContext("2d").drawImage(video, 0, 0);
  grabCanvas.toBlob(
    (blob) => {
      if (blob && state.ws === ws && ws.readyState === WebSocket.OPEN) {
        ws.send(blob);
        state.sent += 1;
      }
    },
    "image/jpeg",
    0.85,
  );
}

function onStreamMessage(msg) {
  if (msg.type === "error") {
    showMessage(`Frame ${msg.frame ?? ""}: ${msg.message}`);
    return;
  }
  const overlay = $("overlay");
  const video = $("video");
  overlay.width = video.clientWidth;
  overlay.height = video.clientHeight;
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  drawBoxes(overlay, msg.faces, msg.width, msg.height);
  renderFaces(msg.faces);
  showLight(msg.light);
  recordTimeline(msg.faces);
  const now = performance.now();
  state.frameTimes.push(now);
  while (state.frameTimes.length && state.frameTimes[0] < now - 3000) state.frameTimes.shift();
  const fps = state.frameTimes.length / 3;
  $("stats").textContent =
    `${fps.toFixed(1)} frames/s · latency ${Math.round(msg.latency_ms)} ms · ` +
    `sent ${state.sent}, processed ${msg.processed}, dropped ${msg.dropped}`;
}

// ------------------------------------------------------------------ photo mode

async function onPhoto() {
  const file = $("photo-input").files[0];
  if (!file) return;
  showMessage("");
  const form = new FormData();
  form.append("file", file, file.name);
  const canvas = $("photo-canvas");
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
    canvas.getContext("2d").drawImage(bitmap, 0, 0);
  } catch (e) {
    canvas.width = 0;  // the server will say what is wrong with the file
  }
  let result;
  try {
    result = await api("/v1/predict", { method: "POST", body: form });
  } catch (e) {
    showMessage(`Prediction failed: ${e.message}`);
    return;
  }
  if (canvas.width) drawBoxes(canvas, result.faces, canvas.width, canvas.height);
  const explained = {};
  if ($("explain").checked && result.faces.length) {
    try {
      const heat = await api("/v1/explain", { method: "POST", body: form });
      for (const face of heat.faces) explained[face.face_id] = face.image;
    } catch (e) {
      showMessage(`Explanation unavailable: ${e.message}`);
    }
  }
  renderFaces(result.faces, explained);
  if (!result.faces.length) showMessage(`No face found in ${result.source}.`);
}

// ------------------------------------------------------------------ wiring

document.addEventListener("DOMContentLoaded", () => {
  $("start").addEventListener("click", () => startCamera().catch((e) => showMessage(e.message)));
  $("stop").addEventListener("click", stopCamera);
  $("tab-camera").addEventListener("click", () => selectTab("camera"));
  $("tab-photo").addEventListener("click", () => selectTab("photo"));
  $("photo-input").addEventListener("change", () => onPhoto());
  $("api-key").addEventListener("change", () => {
    localStorage.setItem("ferlab-api-key", apiKey());
    loadModel().catch((e) => showMessage(e.message));
  });
  loadModel().catch((e) => showMessage(`Cannot reach the model: ${e.message}`));
});
