// blurcam review desk: plain JS, no libraries, nothing fetched from elsewhere.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);
const desk = { items: [], selected: null, detail: null, regionIndex: -1, drag: null, fps: 30, roots: [] };
const STATE_TEXT = { added: "Added", queued: "Queued", rendering: "Rendering", verifying: "Verifying",
  done: "Done", failed: "Failed" };

async function api(path, options = {}) {
  const headers = Object.assign({ "X-Blurcam-Token": TOKEN }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  let data = null;
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  return { ok: response.ok, status: response.status, data };
}

function media(id, kind, extra = "") {
  return `api/items/${id}/${kind}?token=${encodeURIComponent(TOKEN)}${extra}`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

// ---- the file list ----------------------------------------------------------------

function stateText(item) {
  let text = STATE_TEXT[item.state] || item.state;
  if ((item.state === "rendering" || item.state === "verifying") && item.phase_total)
    text += ` ${item.phase_done}/${item.phase_total}`;
  return text;
}

function renderList() {
  const list = $("list");
  list.replaceChildren();
  let folder = null;
  for (const item of desk.items) {
    if (item.folder && item.folder !== folder) {
      folder = item.folder;
      list.append(el("li", { className: "folder" }, folder + "/"));
    }
    const progress = el("progress", { max: 1, value: item.progress });
    progress.setAttribute("aria-label", `Progress of ${item.name}`);
    const state = el("span", { className: `state ${item.state}`, textContent: stateText(item) });
    state.setAttribute("role", "status");
    const row = el("li", { className: item.id === desk.selected ? "item current" : "item" },
      el("span", { className: "name", textContent: item.name }), progress, state);
    if (item.error) row.append(el("span", { className: "error", textContent: item.error }));
    if (item.regions_from)
      row.append(el("span", { className: "run-state", textContent: `regions from ${item.regions_from.split("/").pop()}` }));
    if (item.run_state) row.append(el("span", { className: "run-state", textContent: item.run_state }));
    if (item.renders > 0) {
      const open = el("button", { type: "button", textContent: `Review ${item.name}` });
      open.addEventListener("click", () => select(item.id));
      row.append(open);
    }
    list.append(row);
  }
}

async function poll() {
  const { ok, data } = await api("api/state");
  if (ok) {
    desk.roots = data.roots;
    const before = desk.items.find((i) => i.id === desk.selected);
    desk.items = data.items;
    renderList();
    const current = desk.items.find((i) => i.id === desk.selected);
    if (current && before && (current.renders !== before.renders || current.state !== before.state)) {
      if (current.state === "done") await select(current.id, true);
      else updateBusy(current);
    }
    if (!desk.selected) {
      const first = desk.items.find((i) => i.renders > 0);
      if (first) await select(first.id);
    }
  }
  setTimeout(poll, 500);
}

const RUN_STATE_TEXT = { done: "Done", failed: "Failed", "not yet": "Not yet",
  changed: "Changed since (output gone or replaced)" };

async function pollRuns() {
  const { ok, data } = await api("api/runs");
  if (ok) {
    $("runs").hidden = data.runs.length === 0;
    $("runs-list").replaceChildren(...data.runs.map((run) => {
      const counts = {};
      for (const row of run.files) counts[row.state] = (counts[row.state] || 0) + 1;
      const title = el("h3", { textContent: `${run.folder}: ${run.files.length} file(s), ` +
        (Object.entries(counts).map(([k, n]) => `${n} ${RUN_STATE_TEXT[k] || k}`).join(", ") || "none") });
      const table = el("table", {},
        el("thead", {}, el("tr", {}, ...["File", "From", "State", "Frames", "Faces", "Finished"]
          .map((h) => el("th", { scope: "col", textContent: h })))),
        el("tbody", {}, ...run.files.map((row) => el("tr", {},
          ...[row.key, row.source, RUN_STATE_TEXT[row.state] || row.state, row.frames ?? "", row.faces ?? "",
            row.finished || ""].map((v) => el("td", { textContent: String(v) }))))));
      table.setAttribute("aria-label", `Files of the folder run ${run.folder}`);
      const box = el("div", { className: "run" }, title);
      if (run.error) box.append(el("p", { className: "error", textContent: run.error }));
      box.append(table);
      return box;
    }));
  }
  setTimeout(pollRuns, 2000);
}

async function refresh() {
  const { ok, data } = await api("api/state");
  if (ok) { desk.items = data.items; desk.roots = data.roots; renderList(); }
}

$("add").addEventListener("change", async (event) => {
  const files = Array.from(event.target.files);
  for (const file of files) {
    $("upload-status").textContent = `Uploading ${file.name}…`;
    const { ok, data } = await api(`api/upload?name=${encodeURIComponent(file.name)}`,
      { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
    await refresh();
    $("upload-status").textContent = ok ? `Added ${file.name}` : `Could not add ${file.name}: ${data.error}`;
  }
  event.target.value = "";
});

$("start").addEventListener("click", async () => {
  const preset = $("preset").value;
  await refresh();  // files added a moment ago are started too
  for (const item of desk.items)
    if (item.state === "added" || item.state === "failed")
      await api(`api/items/${item.id}/start`, { method: "POST", body: JSON.stringify({ preset }),
        headers: { "Content-Type": "application/json" } });
  await refresh();
});

// ---- one file: player, overlay, findings ------------------------------------------

async function select(id, reload = false) {
  const { ok, data } = await api(`api/items/${id}`);
  if (!ok) return;
  const changed = desk.selected !== id;
  desk.selected = id;
  desk.detail = data;
  if (changed) { desk.regionIndex = -1; $("preset").value = data.preset; }
  $("review").hidden = false;
  $("review-title").textContent = `Review: ${data.name}`;
  if (changed || !$("export-path").value) $("export-path").value = data.export_to;
  if (changed && data.regions_from) $("keep-status").textContent = `Regions picked up from ${data.regions_from}`;
  const frames = (data.summary && data.summary.frames) || [];
  desk.fps = frames.length > 1 ? 1 / Math.max(1e-3, frames[1].t - frames[0].t) : 30;
  loadMedia(changed || reload);
  renderFindings();
  renderStrip();
  renderRegions();
  renderList();
  updateBusy(data);
}

function loadMedia(force) {
  const d = desk.detail;
  const original = $("show-original").checked;
  const kind = original ? "original" : "output";
  $("download").href = media(d.id, "output", `&download=1&r=${d.renders}`);
  $("sheet").src = d.renders ? media(d.id, "sheet.png", `&r=${d.renders}`) : "";
  if (d.image) {
    $("video").hidden = true;
    $("still").hidden = false;
    $("still").src = media(d.id, kind, `&r=${d.renders}`);
    $("still").onload = draw;
    return;
  }
  $("video").hidden = false;
  $("still").hidden = true;
  const src = media(d.id, kind, `&r=${d.renders}`);
  if (force || !$("video").src.endsWith(src)) {
    const t = $("video").currentTime || 0;
    $("video").src = src;
    $("video").addEventListener("loadedmetadata", () => {
      $("video").currentTime = Math.max(origin(), Math.min(t, $("video").duration || 0));
    }, { once: true });
  }
}

function updateBusy(item) {
  const busy = item.state === "queued" || item.state === "rendering" || item.state === "verifying";
  $("render").disabled = busy;
  $("export").disabled = busy || item.renders === 0;
}

$("show-original").addEventListener("change", () => loadMedia(true));

function episodes(findings, gap) {
  // Findings grouped into stretches of nearby frames: one row per stretch, not per box.
  const sorted = [...findings].sort((a, b) => a.frame - b.frame);
  const out = [];
  for (const f of sorted) {
    const last = out[out.length - 1];
    if (last && f.frame - last.last <= gap) {
      last.last = f.frame; last.count++; last.detail = Math.max(last.detail, f.detail || 0);
    } else out.push({ first: f.frame, last: f.frame, time: f.time_s, count: 1, detail: f.detail || 0 });
  }
  return out;
}

function thumbFor(tile) {  // a crop of the contact sheet: OUTPUT pixels only
  const thumb = el("span", { className: "thumb" });
  thumb.setAttribute("role", "img");
  thumb.setAttribute("aria-label", `Output frame ${tile.frame}`);
  const scale = 120 / tile.xywh[2];
  thumb.style.width = `${tile.xywh[2] * scale}px`;
  thumb.style.height = `${tile.xywh[3] * scale}px`;
  thumb.style.backgroundImage = `url("${$("sheet").src}")`;
  thumb.style.backgroundPosition = `-${tile.xywh[0] * scale}px -${tile.xywh[1] * scale}px`;
  const img = new Image();
  img.onload = () => { thumb.style.backgroundSize = `${img.naturalWidth * scale}px ${img.naturalHeight * scale}px`; };
  img.src = $("sheet").src;
  return thumb;
}

function renderFindings() {
  const v = desk.detail.verify;
  const list = $("verify-list");
  list.replaceChildren();
  if (!v) { $("verify-summary").textContent = "Not checked yet."; return; }
  const verdict = v.ok ? "No face with its detail left was found." : "FACES WITH DETAIL LEFT WERE FOUND.";
  const sampling = v.every === 1 ? "every frame" : `every ${v.every}th frame, the last, and every frame near a finding`;
  $("verify-summary").textContent = `${verdict} blurcam verify checked ${v.frames_checked} of ${v.frames} frames ` +
    `(${sampling}) with CenterFace at threshold ${v.threshold}: ${v.faces_checked} faces measured, ` +
    `${v.findings.length} residual in ${v.residual_frames.length} frames, ${v.doubtful.length} doubtful (low score, ` +
    `mostly textures). Not checked: ${v.not_checked.summary} (turned away, upside down): watch the video yourself.`;
  $("verify-summary").className = v.ok ? "ok" : "bad";
  const tiles = new Map((v.sheet || []).map((t) => [t.frame, t]));
  const gap = Math.max(2, v.every);
  for (const [kind, findings] of [["Residual", v.findings], ["Doubtful", v.doubtful]]) {
    for (const e of episodes(findings, gap).slice(0, 30)) {
      const row = el("li", { className: kind.toLowerCase() });
      const tile = tiles.get(e.first);
      if (tile) row.append(thumbFor(tile));
      const t = e.time == null ? e.first / desk.fps : Math.max(0, e.time - origin());  // verify: timestamps
      const span = e.last > e.first ? `frames ${e.first}–${e.last}` : `frame ${e.first}`;
      row.append(` ${kind}: ${span} from ${t.toFixed(2)} s, ${e.count} box(es), up to ` +
        `${(100 * e.detail).toFixed(0)}% of the detail kept `);
      const go = el("button", { type: "button", textContent: `Go to ${t.toFixed(2)} s` });
      go.addEventListener("click", () => seek(t));
      row.append(go);
      list.append(row);
    }
  }
}

function renderStrip() {
  const strip = $("strip");
  strip.replaceChildren();
  const s = desk.detail.summary;
  if (!s) return;
  const most = Math.max(1, ...s.faces_per_second);
  const residual = new Set(((desk.detail.verify || {}).findings || [])
    .map((f) => Math.floor(f.time_s == null ? f.frame / desk.fps : f.time_s - origin())));
  s.faces_per_second.forEach((n, second) => {
    const bar = el("button", { type: "button", className: residual.has(second) ? "bar residual" : "bar",
      title: `${second}-${second + 1} s: up to ${n} faces` });
    bar.setAttribute("aria-label", `Second ${second}: ${n} faces`);
    bar.style.height = `${8 + 32 * n / most}px`;
    bar.addEventListener("click", () => seek(second));
    strip.append(bar);
  });
  strip.setAttribute("aria-label", `Faces found per second: ${s.faces_per_second.join(", ")}`);
}

// ---- time and drawing ------------------------------------------------------------

const video = $("video");
// Times on the page (and in regions files) count from the first frame; a player's clock
// starts at the first frame's timestamp (1.5 s for a clip cut from a longer recording).
function origin() { return (desk.detail && desk.detail.summary && desk.detail.summary.origin_s) || 0; }
function now() { return desk.detail && desk.detail.image ? 0 : Math.max(0, (video.currentTime || 0) - origin()); }
function seek(t) {
  video.pause();
  video.currentTime = Math.max(origin(), Math.min(t + origin(), video.duration || t + origin()));
}
$("play").addEventListener("click", () => (video.paused ? video.play() : video.pause()));
$("prev").addEventListener("click", () => seek(now() - 1 / desk.fps));
$("next").addEventListener("click", () => seek(now() + 1 / desk.fps));
$("time").addEventListener("input", (e) => seek(parseFloat(e.target.value)));
video.addEventListener("play", () => { $("play").textContent = "Pause"; });
video.addEventListener("pause", () => { $("play").textContent = "Play"; });
video.addEventListener("loadedmetadata", () => {
  $("time").max = Math.max(0, video.duration - origin());
  $("time").step = 1 / desk.fps;
  draw();
});
video.addEventListener("timeupdate", () => draw());
video.addEventListener("seeked", () => draw());
function tick() { if (!video.paused) draw(); requestAnimationFrame(tick); }
requestAnimationFrame(tick);

function pictureSize() {
  if (desk.detail && desk.detail.image) return [$("still").naturalWidth, $("still").naturalHeight];
  return [video.videoWidth, video.videoHeight];
}

function frameAt(t) {
  const frames = (desk.detail && desk.detail.summary && desk.detail.summary.frames) || [];
  let best = null;
  for (const f of frames) if (best === null || Math.abs(f.t - t) < Math.abs(best.t - t)) best = f;
  return best;
}

function regionBox(region, t) {  // the same rule as blurcam/regions.py boxes_at
  const slack = 0.5 / desk.fps;
  const start = region.start ?? region.keyframes[0].t;
  const end = region.end ?? region.keyframes[region.keyframes.length - 1].t;
  if (t < start - slack || t > end + slack) return null;
  const keys = region.keyframes;
  if (t <= keys[0].t) return keys[0].box;
  for (let i = 1; i < keys.length; i++) {
    if (t <= keys[i].t) {
      const w = (t - keys[i - 1].t) / (keys[i].t - keys[i - 1].t);
      return keys[i - 1].box.map((v, j) => v + w * (keys[i].box[j] - v));
    }
  }
  return keys[keys.length - 1].box;
}

function draw() {
  const canvas = $("overlay");
  const shown = desk.detail && desk.detail.image ? $("still") : video;
  canvas.width = shown.clientWidth;
  canvas.height = shown.clientHeight;
  const [w, h] = pictureSize();
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!desk.detail || !w) return;
  const t = now();
  $("time").value = t;
  $("clock").textContent = `${t.toFixed(2)} s`;
  const sx = canvas.width / w, sy = canvas.height / h;
  const rect = (b, colour, width, dash = []) => {
    ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.setLineDash(dash);
    ctx.strokeRect(b[0] * sx, b[1] * sy, (b[2] - b[0]) * sx, (b[3] - b[1]) * sy);
  };
  const frame = frameAt(t);
  const list = $("frame-boxes");
  list.replaceChildren();
  if (frame) {
    frame.boxes.forEach((b, n) => {
      if (b[6] === "region") return;
      rect(b, "#2f9e44", 1);
      const row = el("li", {}, `Box ${n + 1}: score ${b[4].toFixed(2)} (${b[6]}) `);
      const mark = el("button", { type: "button", textContent: `Not a face: box ${n + 1}` });
      mark.addEventListener("click", () => markNotFace(b));
      row.append(mark);
      list.append(row);
    });
  }
  desk.detail.regions.regions.forEach((region, i) => {
    const box = regionBox(region, t);
    if (box) rect(box, region.kind === "not-a-face" ? "#868e96" : "#1c7ed6", i === desk.regionIndex ? 3 : 2,
      region.kind === "not-a-face" ? [6, 4] : []);
  });
  if (desk.drag && desk.drag.box) rect(desk.drag.box, "#e8590c", 2);
}
window.addEventListener("resize", draw);

function toPicture(event) {
  const canvas = $("overlay");
  const r = canvas.getBoundingClientRect();
  const [w, h] = pictureSize();
  const x = Math.max(0, Math.min(w, (event.clientX - r.left) * w / r.width));
  const y = Math.max(0, Math.min(h, (event.clientY - r.top) * h / r.height));
  return [x, y];
}

$("overlay").addEventListener("pointerdown", (event) => {
  if (!desk.detail || !desk.detail.renders) return;
  video.pause();
  const p = toPicture(event);
  desk.drag = { from: p, box: null };
  $("overlay").setPointerCapture(event.pointerId);
});
$("overlay").addEventListener("pointermove", (event) => {
  if (!desk.drag) return;
  const [x, y] = toPicture(event);
  const [x0, y0] = desk.drag.from;
  desk.drag.box = [Math.min(x0, x), Math.min(y0, y), Math.max(x0, x), Math.max(y0, y)];
  draw();
});
$("overlay").addEventListener("pointerup", () => {
  const drag = desk.drag;
  desk.drag = null;
  if (drag && drag.box && drag.box[2] - drag.box[0] >= 4 && drag.box[3] - drag.box[1] >= 4) setBox(drag.box);
  draw();
});

// ---- regions ----------------------------------------------------------------------

function regions() { return desk.detail.regions.regions; }
function round2(v) { return Math.round(v * 100) / 100; }
function newId(prefix) {
  let n = 1;
  while (regions().some((r) => r.id === `${prefix}${n}`)) n++;
  return `${prefix}${n}`;
}

function setBox(box) {
  const t = round2(now() * 1000) / 1000;
  box = box.map((v) => Math.round(v));
  ["box-x1", "box-y1", "box-x2", "box-y2"].forEach((id, i) => { $(id).value = box[i]; });
  let region = regions()[desk.regionIndex];
  if (!region || region.kind !== "face") {
    region = { id: newId("face"), kind: "face", start: t, end: t, keyframes: [] };
    regions().push(region);
    desk.regionIndex = regions().length - 1;
  }
  region.keyframes = region.keyframes.filter((k) => Math.abs(k.t - t) > 1e-3);
  region.keyframes.push({ t, box });
  region.keyframes.sort((a, b) => a.t - b.t);
  region.start = Math.min(region.start, t);
  region.end = Math.max(region.end, t);
  saveRegions();
}

$("set-box").addEventListener("click", () => {
  const box = ["box-x1", "box-y1", "box-x2", "box-y2"].map((id) => parseFloat($(id).value));
  if (box.some(isNaN) || box[2] <= box[0] || box[3] <= box[1]) {
    $("selected").textContent = "Type Left < Right and Top < Bottom, in pixels.";
    return;
  }
  setBox(box);
});

$("new-region").addEventListener("click", () => {
  desk.regionIndex = -1;
  $("selected").textContent = "Drag over the face (or type its box) to start a new region here.";
  renderRegions();
});

function markNotFace(box) {
  const t = now();
  // The whole track the box belongs to, from the report; a box without a track: about a second around now.
  const track = box[5];
  const keys = [];
  for (const f of desk.detail.summary.frames)
    for (const b of f.boxes)
      if (track >= 0 ? b[5] === track : (b === box))
        if (!keys.length || f.t - keys[keys.length - 1].t >= 0.25) keys.push({ t: f.t, box: b.slice(0, 4) });
  if (!keys.length) keys.push({ t, box: box.slice(0, 4) });
  const grow = (b) => { const dw = 0.1 * (b[2] - b[0]), dh = 0.1 * (b[3] - b[1]);
    return [b[0] - dw, b[1] - dh, b[2] + dw, b[3] + dh].map((v) => Math.round(v)); };
  const region = { id: newId("not-face"), kind: "not-a-face", start: round2(Math.max(0, keys[0].t - (track >= 0 ? 0 : 0.5))),
    end: round2(keys[keys.length - 1].t + (track >= 0 ? 0 : 0.5)), keyframes: keys.map((k) => ({ t: k.t, box: grow(k.box) })) };
  regions().push(region);
  desk.regionIndex = regions().length - 1;
  saveRegions();
}

function renderRegions() {
  const list = $("regions");
  list.replaceChildren();
  regions().forEach((region, i) => {
    const label = region.kind === "face" ? "Face region" : "Not a face";
    const row = el("li", { className: i === desk.regionIndex ? "current" : "" },
      `${label} ${region.id}: ${region.start.toFixed(2)}–${region.end.toFixed(2)} s, ${region.keyframes.length} keyframe(s) `);
    const button = (text, action) => {
      const b = el("button", { type: "button", textContent: text });
      b.addEventListener("click", action);
      row.append(b, " ");
    };
    button(`Select ${region.id}`, () => { desk.regionIndex = i; renderRegions(); draw(); });
    button(`Start ${region.id} here`, () => { region.start = Math.min(round2(now()), region.end); saveRegions(); });
    button(`End ${region.id} here`, () => { region.end = Math.max(round2(now()), region.start); saveRegions(); });
    button(`Delete ${region.id}`, () => { regions().splice(i, 1); desk.regionIndex = -1; saveRegions(); });
    list.append(row);
  });
  const current = regions()[desk.regionIndex];
  $("selected").textContent = current ? `Selected: ${current.id}. Drag or type a box to add a keyframe at this time.` : "";
  const s = desk.detail.summary;
  const excluded = s ? s.excluded.length : 0;
  if (regions().some((r) => r.kind === "not-a-face"))
    list.append(el("li", { className: "note" }, `Not-a-face marks remove only boxes the detector is under 0.5 sure of; ` +
      `${excluded} box(es) were removed in the last render.`));
}

async function saveRegions() {
  renderRegions();
  draw();
  const d = desk.detail;
  const size = pictureSize();
  const doc = Object.assign({}, d.regions);
  if (size[0] > 0 && size[1] > 0) doc.size = size;
  const { ok, data } = await api(`api/items/${d.id}/regions`, { method: "PUT", body: JSON.stringify(doc),
    headers: { "Content-Type": "application/json" } });
  $("selected").textContent = ok ? $("selected").textContent : `Not saved: ${data.error}`;
}

$("render").addEventListener("click", async () => {
  const d = desk.detail;
  await saveRegions();
  const { ok, data } = await api(`api/items/${d.id}/start`, { method: "POST",
    body: JSON.stringify({ preset: $("preset").value }), headers: { "Content-Type": "application/json" } });
  if (ok) { d.state = data.state; updateBusy(data); }
});

// ---- export -----------------------------------------------------------------------

async function exportTo(path, overwrite) {
  return api(`api/items/${desk.detail.id}/export`, { method: "POST", body: JSON.stringify({ path, overwrite }),
    headers: { "Content-Type": "application/json" } });
}

$("keep-regions").addEventListener("click", async () => {
  const send = (overwrite) => api(`api/items/${desk.detail.id}/keep-regions`, { method: "POST",
    body: JSON.stringify({ path: $("export-path").value, overwrite }), headers: { "Content-Type": "application/json" } });
  let { ok, data } = await send(false);
  if (!ok && data.exists) {
    if (!confirm(`${data.error}. Replace it?`)) { $("keep-status").textContent = "Regions not kept."; return; }
    ({ ok, data } = await send(true));
  }
  $("keep-status").textContent = ok ? `Regions kept: ${data.written[0]} (a desk started on this file again picks ` +
    "them up)" : `Regions not kept: ${data.error}`;
});

$("export").addEventListener("click", async () => {
  const path = $("export-path").value;
  let { ok, data } = await exportTo(path, false);
  if (!ok && data.exists) {
    if (!confirm(`${data.error}. Replace it?`)) { $("export-status").textContent = "Not exported."; return; }
    ({ ok, data } = await exportTo(path, true));
  }
  $("export-status").textContent = ok ? `Exported: ${data.written.join(", ")}` : `Not exported: ${data.error}`;
});

poll();
pollRuns();
