"use strict";
// The collection map: GET …/map drawn as a WebGL point cloud (no library, no eval, so the
// page's CSP holds). Drag pans, the wheel zooms, hovering shows the item, a click opens it
// (its id goes into the query builder), and each search's results are drawn on top.
// Shift-drag draws a lasso: searches then keep to the items inside it (the `ids` of a search).
// Uses app.js's helpers (api, getJSON, inCollection, thumbURL, useInQuery, showView).

const PALETTE = [
  [0.12, 0.47, 0.71], [1.0, 0.5, 0.05], [0.17, 0.63, 0.17], [0.84, 0.15, 0.16],
  [0.58, 0.4, 0.74], [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.74, 0.74, 0.13],
  [0.09, 0.75, 0.81], [0.68, 0.78, 0.91], [1.0, 0.73, 0.47], [0.6, 0.87, 0.54],
];
const NOISE = [0.6, 0.6, 0.6];
const GRID = 128; // hover lookup: points bucketed on a GRID × GRID grid of the unit square

const mapState = {
  gl: null, program: null, buffers: null, count: 0,
  ids: [], x: null, y: null, cluster: null, labels: new Map(), byId: new Map(), grid: null,
  view: { cx: 0.5, cy: 0.5, zoom: 1 }, highlight: [], frames: 0, loaded: "", seq: 0,
  drag: null, hoverIndex: -1, lasso: null, selection: [], path: [],
};
window.latentspaceMap = mapState; // read by the page test and the frame-rate bench

const VERTEX = `
attribute vec2 a_pos;
attribute vec3 a_color;
uniform vec2 u_scale;
uniform vec2 u_offset;
uniform float u_size;
varying vec3 v_color;
void main() {
  gl_Position = vec4(a_pos * u_scale + u_offset, 0.0, 1.0);
  gl_PointSize = u_size;
  v_color = a_color;
}`;
const FRAGMENT = `
precision mediump float;
varying vec3 v_color;
void main() {
  vec2 d = gl_PointCoord - vec2(0.5);
  if (dot(d, d) > 0.25) discard;
  gl_FragColor = vec4(v_color, 0.85);
}`;

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
  return shader;
}

function setupGL() {
  if (mapState.gl) return mapState.gl;
  const gl = els.mapCanvas.getContext("webgl", { antialias: false, preserveDrawingBuffer: true });
  if (!gl) throw new Error("This browser has no WebGL: the map cannot be drawn.");
  const program = gl.createProgram();
  gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
  gl.linkProgram(program);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program));
  mapState.gl = gl;
  mapState.program = program;
  const buffer = () => gl.createBuffer();
  mapState.buffers = { points: buffer(), marks: buffer(), chosen: buffer(), path: buffer() };
  gl.enable(gl.BLEND);
  gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
  return gl;
}

// Interleaved x, y, r, g, b per point, in the unit square.
function vertices(indices, colour) {
  const out = new Float32Array(indices.length * 5);
  indices.forEach((i, n) => {
    const c = colour(i);
    out.set([mapState.x[i], mapState.y[i], c[0], c[1], c[2]], n * 5);
  });
  return out;
}

function upload(buffer, data) {
  const gl = mapState.gl;
  gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
  gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
}

function drawBuffer(buffer, count, size, mode = mapState.gl.POINTS) {
  const gl = mapState.gl;
  const program = mapState.program;
  gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
  const pos = gl.getAttribLocation(program, "a_pos");
  const color = gl.getAttribLocation(program, "a_color");
  gl.enableVertexAttribArray(pos);
  gl.vertexAttribPointer(pos, 2, gl.FLOAT, false, 20, 0);
  gl.enableVertexAttribArray(color);
  gl.vertexAttribPointer(color, 3, gl.FLOAT, false, 20, 8);
  gl.uniform1f(gl.getUniformLocation(program, "u_size"), size);
  gl.drawArrays(mode, 0, count);
}

let framePending = false;
function draw() {
  if (framePending) return;
  framePending = true;
  requestAnimationFrame(() => {
    framePending = false;
    const gl = mapState.gl;
    if (!gl) return;
    const canvas = els.mapCanvas;
    const ratio = window.devicePixelRatio || 1;
    const w = Math.round(canvas.clientWidth * ratio);
    const h = Math.round(canvas.clientHeight * ratio);
    if (canvas.width !== w || canvas.height !== h) Object.assign(canvas, { width: w, height: h });
    gl.viewport(0, 0, w, h);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.useProgram(mapState.program);
    const { cx, cy, zoom } = mapState.view;
    const aspect = w / Math.max(h, 1);
    const sx = (2 * zoom) / Math.max(aspect, 1);
    const sy = 2 * zoom * Math.min(aspect, 1);
    gl.uniform2f(gl.getUniformLocation(mapState.program, "u_scale"), sx, sy);
    gl.uniform2f(gl.getUniformLocation(mapState.program, "u_offset"), -cx * sx, -cy * sy);
    const base = mapState.count < 2000 ? 6 : mapState.count < 20000 ? 4 : 2.5;
    const size = Math.min(12, base * Math.sqrt(zoom)) * ratio;
    drawBuffer(mapState.buffers.points, mapState.count, size);
    if (mapState.selection.length) drawBuffer(mapState.buffers.chosen, mapState.selection.length, 1.6 * size);
    if (mapState.highlight.length) drawBuffer(mapState.buffers.marks, mapState.highlight.length, 3 * size);
    const steps = mapState.path.length;
    if (steps) {
      drawBuffer(mapState.buffers.path, steps, size, gl.LINE_STRIP);
      drawBuffer(mapState.buffers.path, steps, 2.5 * size);
    }
    mapState.frames += 1;
  });
}

// -- data -------------------------------------------------------------------------------------
function normalise(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi - lo || 1;
  return Float32Array.from(values, (v) => 0.05 + (0.9 * (v - lo)) / span);
}

function setMap(map) {
  setupGL();
  mapState.ids = map.ids;
  mapState.x = normalise(map.x);
  mapState.y = normalise(map.y);
  mapState.cluster = Int32Array.from(map.cluster);
  mapState.labels = new Map(map.clusters.map((c) => [c.id, c.label || c.example]));
  mapState.byId = new Map(map.ids.map((id, i) => [id, i]));
  mapState.count = map.ids.length;
  mapState.grid = new Map();
  for (let i = 0; i < mapState.count; i++) {
    const key = cell(mapState.x[i], mapState.y[i]);
    if (!mapState.grid.has(key)) mapState.grid.set(key, []);
    mapState.grid.get(key).push(i);
  }
  const all = Array.from({ length: mapState.count }, (_, i) => i);
  upload(mapState.buffers.points, vertices(all, (i) => colourOf(mapState.cluster[i])));
  mapState.view = { cx: 0.5, cy: 0.5, zoom: 1 };
  mark(mapState.highlight.map((i) => mapState.ids[i]));
  select(mapState.selection.map((id) => mapState.byId.get(id)).filter((i) => i !== undefined));
  const named = map.clusters.filter((c) => c.label).length;
  els.mapStatus.textContent = `${map.ids.length} items in ${map.clusters.length} clusters` +
    ` (${map.method}${map.placed ? `, ${map.placed} placed since the fit` : ""})` +
    (named ? "" : " · clusters named by their nearest text or item");
  els.mapCanvas.hidden = false;
  draw();
}

const colourOf = (c) => (c < 0 ? NOISE : PALETTE[c % PALETTE.length]);
const cell = (x, y) => Math.min(GRID - 1, Math.floor(x * GRID)) * GRID + Math.min(GRID - 1, Math.floor(y * GRID));

// Draw these ids (search results) large on top, in the order given.
function mark(ids) {
  if (!mapState.gl) return;
  mapState.highlight = ids.map((id) => mapState.byId.get(id)).filter((i) => i !== undefined);
  upload(mapState.buffers.marks, vertices(mapState.highlight, () => [0.05, 0.05, 0.05]));
  draw();
}

async function loadMap() {
  const seq = ++mapState.seq;
  els.mapCompute.disabled = !state.collection;
  if (!state.collection) return;
  els.mapStatus.textContent = "Loading the map…";
  try {
    const response = await fetch(inCollection("/map"), {
      headers: state.key ? { Authorization: `Bearer ${state.key}` } : {},
    });
    if (seq !== mapState.seq) return;
    if (response.status === 404) {
      const problem = await response.json().catch(() => ({}));
      if (/map/i.test(problem.detail || "")) {
        els.mapCanvas.hidden = true;
        els.mapStatus.textContent = "No map of this collection yet: press “Compute map”.";
        return;
      }
      throw new Error(problem.detail || "404 Not Found");
    }
    if (!response.ok) throw await problemOf(response);
    setMap(await response.json());
    mapState.loaded = state.collection;
  } catch (err) {
    if (seq === mapState.seq) {
      showError(err);
      els.mapStatus.textContent = "The map could not be loaded.";
    }
  }
}

async function computeMap() {
  clearError();
  els.mapCompute.disabled = true;
  els.mapStatus.textContent = "Fitting the map (a background job)…";
  try {
    let job = await getJSON(inCollection("/map"), { method: "POST", json: {} });
    while (job.state === "queued" || job.state === "running") {
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await getJSON(`/v1/jobs/${job.id}`);
    }
    if (job.state !== "done") throw new Error(`the map job ${job.state}: ${job.error || ""}`);
    await loadMap();
  } catch (err) {
    showError(err);
    els.mapStatus.textContent = "The map could not be fitted.";
  } finally {
    els.mapCompute.disabled = false;
  }
}

// -- pointer ----------------------------------------------------------------------------------
// Canvas pixels <-> the unit square the points live in.
function toData(event) {
  const rect = els.mapCanvas.getBoundingClientRect();
  const w = rect.width;
  const h = rect.height;
  const aspect = w / Math.max(h, 1);
  const { cx, cy, zoom } = mapState.view;
  const sx = (2 * zoom) / Math.max(aspect, 1);
  const sy = 2 * zoom * Math.min(aspect, 1);
  const nx = ((event.clientX - rect.left) / w) * 2 - 1;
  const ny = 1 - ((event.clientY - rect.top) / h) * 2;
  return { x: nx / sx + cx, y: ny / sy + cy, perPixel: 2 / (w * sx) };
}

// Where point i is on the screen (client coordinates): the page test hovers and clicks it.
mapState.pointAt = (i) => {
  const rect = els.mapCanvas.getBoundingClientRect();
  const aspect = rect.width / Math.max(rect.height, 1);
  const { cx, cy, zoom } = mapState.view;
  const sx = (2 * zoom) / Math.max(aspect, 1);
  const sy = 2 * zoom * Math.min(aspect, 1);
  const nx = (mapState.x[i] - cx) * sx;
  const ny = (mapState.y[i] - cy) * sy;
  return { x: rect.left + ((nx + 1) / 2) * rect.width, y: rect.top + ((1 - ny) / 2) * rect.height };
};

function nearest(event) {
  if (!mapState.count) return -1;
  const { x, y, perPixel } = toData(event);
  const radius = 8 * perPixel;
  let best = -1;
  let bestD = radius * radius;
  const span = Math.ceil(radius * GRID);
  const gx = Math.floor(x * GRID);
  const gy = Math.floor(y * GRID);
  for (let i = gx - span; i <= gx + span; i++) {
    for (let j = gy - span; j <= gy + span; j++) {
      if (i < 0 || j < 0 || i >= GRID || j >= GRID) continue;
      for (const p of mapState.grid.get(i * GRID + j) || []) {
        const d = (mapState.x[p] - x) ** 2 + (mapState.y[p] - y) ** 2;
        if (d <= bestD) [best, bestD] = [p, d];
      }
    }
  }
  return best;
}

function hover(event) {
  const i = nearest(event);
  if (i === mapState.hoverIndex) return;
  mapState.hoverIndex = i;
  const tip = els.mapTip;
  if (i < 0) {
    tip.hidden = true;
    return;
  }
  const id = mapState.ids[i];
  const label = mapState.labels.get(mapState.cluster[i]);
  tip.querySelector("span").textContent = `${id}${label ? ` · ${label}` : ""}`;
  const img = tip.querySelector("img");
  img.hidden = true;
  thumbURL(id).then((url) => {
    if (mapState.hoverIndex === i && url) Object.assign(img, { src: url, hidden: false });
  });
  const rect = els.mapCanvas.getBoundingClientRect();
  tip.style.left = `${event.clientX - rect.left + 12}px`;
  tip.style.top = `${event.clientY - rect.top + 12}px`;
  tip.dataset.id = id;
  tip.hidden = false;
}

// -- the lasso --------------------------------------------------------------------------------
function drawLasso() {
  const canvas = els.mapLasso;
  const rect = els.mapCanvas.getBoundingClientRect();
  Object.assign(canvas, { width: rect.width, height: rect.height });
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const path = mapState.lasso;
  if (!path || path.length < 2) return;
  g.strokeStyle = "#3b4cc0";
  g.lineWidth = 2;
  g.setLineDash([6, 4]);
  g.beginPath();
  path.forEach((p, i) => (i ? g.lineTo(p.x - rect.left, p.y - rect.top) : g.moveTo(p.x - rect.left, p.y - rect.top)));
  g.closePath();
  g.stroke();
}

function inside(polygon, x, y) {
  let hit = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [a, b] = [polygon[i], polygon[j]];
    if ((a.y > y) !== (b.y > y) && x < ((b.x - a.x) * (y - a.y)) / (b.y - a.y) + a.x) hit = !hit;
  }
  return hit;
}

function select(indices) {
  mapState.selection = indices.map((i) => mapState.ids[i]);
  upload(mapState.buffers.chosen, vertices(indices, () => [0.23, 0.3, 0.75]));
  els.mapSelection.hidden = !indices.length;
  els.mapSelectionText.textContent = `Lasso: ${indices.length} item${indices.length === 1 ? "" : "s"}; searches keep to them.`;
  draw();
}

function endLasso() {
  const polygon = mapState.lasso.map((p) => toData({ clientX: p.x, clientY: p.y }));
  mapState.lasso = null;
  drawLasso();
  const chosen = [];
  if (polygon.length >= 3) {
    for (let i = 0; i < mapState.count; i++) if (inside(polygon, mapState.x[i], mapState.y[i])) chosen.push(i);
  }
  select(chosen);
}

els.mapCanvas.addEventListener("pointerdown", (event) => {
  els.mapCanvas.setPointerCapture(event.pointerId);
  if (event.shiftKey) {
    mapState.lasso = [{ x: event.clientX, y: event.clientY }];
    return;
  }
  mapState.drag = { x: event.clientX, y: event.clientY, moved: false, view: { ...mapState.view } };
});
els.mapCanvas.addEventListener("pointermove", (event) => {
  if (mapState.lasso) {
    mapState.lasso.push({ x: event.clientX, y: event.clientY });
    return drawLasso();
  }
  const drag = mapState.drag;
  if (!drag) return hover(event);
  const dx = event.clientX - drag.x;
  const dy = event.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
  const { perPixel } = toData(event);
  mapState.view = { ...drag.view, cx: drag.view.cx - dx * perPixel, cy: drag.view.cy + dy * perPixel };
  els.mapTip.hidden = true;
  draw();
});
els.mapCanvas.addEventListener("pointerup", (event) => {
  if (mapState.lasso) return endLasso();
  const drag = mapState.drag;
  mapState.drag = null;
  if (drag && !drag.moved) {
    const i = nearest(event);
    if (i >= 0) {
      const id = mapState.ids[i];
      els.mapPicked.textContent = `Picked ${id}: added to the query builder.`;
      useInQuery(id);
    }
  }
});
els.mapCanvas.addEventListener("wheel", (event) => {
  event.preventDefault();
  const before = toData(event);
  const factor = Math.exp(-event.deltaY * 0.0015);
  mapState.view.zoom = Math.min(500, Math.max(0.5, mapState.view.zoom * factor));
  const after = toData(event); // keep the point under the pointer where it was
  mapState.view.cx += before.x - after.x;
  mapState.view.cy += before.y - after.y;
  draw();
}, { passive: false });
els.mapCanvas.addEventListener("pointerleave", () => { els.mapTip.hidden = true; mapState.hoverIndex = -1; });

// -- a path walk, drawn as a line through the items it passes ----------------------------------
const termOf = (raw) => (raw.startsWith("item:") ? { item: raw.slice(5) } : { text: raw });

async function walk(event) {
  event.preventDefault();
  clearError();
  const [from, to] = [els.walkFrom.value.trim(), els.walkTo.value.trim()];
  if (!from || !to) return showError("Give the walk a start and an end.");
  try {
    const json = { from: termOf(from), to: termOf(to), steps: Number(els.walkSteps.value) || 8 };
    const body = await getJSON(inCollection("/path"), { method: "POST", json });
    const ids = body.steps.map((s) => s.item?.id).filter(Boolean);
    const indices = ids.map((id) => mapState.byId.get(id)).filter((i) => i !== undefined);
    mapState.path = indices.map((i) => mapState.ids[i]);
    if (mapState.gl) upload(mapState.buffers.path, vertices(indices, () => [0.85, 0.33, 0.1]));
    els.mapPicked.textContent = `Walk: ${ids.join(" → ")}`;
    draw();
  } catch (err) {
    showError(err);
  }
}

els.walkForm.addEventListener("submit", walk);
els.mapCompute.addEventListener("click", computeMap);
els.mapClearLasso.addEventListener("click", () => select([]));
document.addEventListener("latentspace:results", (event) => mark(event.detail));
document.addEventListener("latentspace:view", (event) => {
  if (event.detail === "map" && mapState.loaded !== state.collection) loadMap();
  if (event.detail === "map") draw();
});
document.addEventListener("latentspace:collection", () => {
  mapState.loaded = "";
  mapState.highlight = [];
  mapState.selection = [];
  mapState.path = [];
  els.mapSelection.hidden = true;
  if (!els.mapView.hidden) loadMap();
});
mapState.redraw = draw; // the frame-rate bench pans through this
