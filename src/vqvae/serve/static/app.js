// The page of `vqvae serve` (docs/serve.md): plain JavaScript over the JSON API, no library,
// no network beyond this server. One view per modality: image, audio (speech), frames (maze).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let RUN = params.get("run");
let INFO = null;

// -- talking to the server ----------------------------------------------------------------------
function url(path, extra = {}) {
  const q = new URLSearchParams(extra);
  if (RUN) q.set("run", RUN);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function api(path, { json, form, query, as = "json" } = {}) {
  const init = {};
  if (json !== undefined) {
    init.method = "POST";
    init.headers = { "content-type": "application/json" };
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.method = "POST";
    init.body = form;
  }
  const response = await fetch(url(path, query), init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return as === "blob" ? response.blob() : response.json();
}

function fileForm(blob, name) {
  const form = new FormData();
  form.append("file", blob, name);
  return form;
}

function showError(e) {
  const box = $("error");
  box.textContent = e ? String(e.message || e) : "";
  box.hidden = !e;
}

function status(id, text, refused = false) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("refused", refused);
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  select.appendChild(o);
}

function setImage(img, blob) {
  // resolves once the new picture is shown; `data-loads` counts pictures shown (tests wait on it)
  return new Promise((resolve) => {
    const old = img.src;
    img.onload = () => {
      img.dataset.loads = String(Number(img.dataset.loads || 0) + 1);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      resolve();
    };
    img.src = URL.createObjectURL(blob);
  });
}

// -- start ----------------------------------------------------------------------------------------
async function start() {
  try {
    const { runs } = await api("/api/runs");
    RUN = RUN || runs[0];
    for (const name of runs) option($("run"), name, name);
    $("run").value = RUN;
    $("run").onchange = () => { location.search = `?run=${encodeURIComponent($("run").value)}`; };
    INFO = await api("/api/info");
    const bits = [`${INFO.modality}`, `codes ${INFO.shape.map((s) => s ?? "T'").join("x")}`,
                  `K = ${INFO.num_codes}`, INFO.prior ? `prior: ${INFO.prior}` : "no prior"];
    if (INFO.video_prior) bits.push(`video prior: ${INFO.video_prior}`);
    $("summary").textContent = bits.join(" · ");
    const view = { image: imageView, audio: audioView, frames: framesView }[INFO.modality];
    await view();
    document.body.dataset.ready = INFO.modality;
  } catch (e) {
    showError(e);
  }
}

// -- an image run ---------------------------------------------------------------------------------
const image = { codes: null, first: null, mask: null, cell: null, book: null, painting: false };

async function imageView() {
  $("image-view").hidden = false;
  $("image-file").onchange = (ev) => {
    const file = ev.target.files[0];
    if (file) loadImage(file, file.name);
  };
  $("codebook").src = url("/api/codebook");
  image.book = new Image();
  image.book.src = url("/api/codebook");
  document.querySelectorAll("input[name=tool]").forEach((r) => { r.onchange = toolChanged; });
  $("redraw").onclick = redraw;
  $("clear-mask").onclick = () => { image.mask = blank(false); drawGrid(); };
  $("reset-codes").onclick = async () => {
    if (!image.first) return;
    image.codes = JSON.parse(JSON.stringify(image.first));
    await decodeImage();
  };
  setUpGrid();
  setUpSampling();
  const { items, note } = await api("/api/examples");
  if (note) $("image-examples").textContent = note;
  for (const item of items.slice(0, 32)) {
    const b = document.createElement("button");
    const img = document.createElement("img");
    img.src = url(`/api/examples/${item.index}`);
    img.alt = item.label === null ? `test image ${item.index}` : `a ${item.label}`;
    b.title = `test image ${item.index}` + (item.label === null ? "" : ` (${item.label})`);
    b.appendChild(img);
    b.onclick = async () => loadImage(await api(`/api/examples/${item.index}`, { as: "blob" }),
                                     `test-${item.index}.png`);
    $("image-examples").appendChild(b);
  }
}

// residual runs hold (Q, h, w) codes: the page shows and edits the first level's grid
const levels = () => INFO.shape.length > 2;
const grid = (codes) => (levels() ? codes[0] : codes);

function blank(value) {
  const [h, w] = INFO.shape.slice(-2);
  return Array.from({ length: h }, () => Array(w).fill(value));
}

async function loadImage(blob, name) {
  try {
    showError(null);
    const { codes } = await api("/api/encode", { form: fileForm(blob, name) });
    image.codes = codes;
    image.first = JSON.parse(JSON.stringify(codes));
    image.mask = blank(false);
    image.cell = null;
    $("candidates").innerHTML = "";
    $("cell-info").textContent = "Click a cell of the grid.";
    const [h, w] = INFO.shape.slice(-2);
    const q = levels() ? ` (level 1 of ${INFO.shape[0]})` : "";
    $("grid-shape").textContent = `${h}x${w} codes of ${INFO.num_codes}${q}`;
    await setImage($("original"), blob);
    await decodeImage();
  } catch (e) {
    showError(e);
  }
}

async function decodeImage() {
  const blob = await api("/api/decode", { json: { codes: image.codes }, as: "blob" });
  await setImage($("recon"), blob);
  const before = image.first.flat(2);
  const edits = image.codes.flat(2).filter((c, i) => c !== before[i]).length;
  $("edits").textContent = edits ? `${edits} code(s) changed` : "";
  drawGrid();
}

function setUpGrid() {
  const canvas = $("grid");
  canvas.width = canvas.height = 512;
  const cellAt = (ev) => {
    const r = canvas.getBoundingClientRect();
    const [h, w] = INFO.shape.slice(-2);
    const row = Math.min(h - 1, Math.floor(((ev.clientY - r.top) / r.height) * h));
    const col = Math.min(w - 1, Math.floor(((ev.clientX - r.left) / r.width) * w));
    return [row, col];
  };
  canvas.onmousedown = (ev) => {
    if (!image.codes) return;
    const [row, col] = cellAt(ev);
    if (tool() === "paint") {
      image.painting = !image.mask[row][col];
      image.mask[row][col] = image.painting;
      canvas.onmousemove = (e2) => {
        const [r2, c2] = cellAt(e2);
        image.mask[r2][c2] = image.painting;
        drawGrid();
      };
      drawGrid();
    } else {
      pickCell(row, col);
    }
  };
  window.addEventListener("mouseup", () => { canvas.onmousemove = null; });
}

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

function toolChanged() {
  $("edit-tools").hidden = tool() !== "edit";
  $("paint-tools").hidden = tool() !== "paint";
  drawGrid();
}

function drawGrid() {
  const canvas = $("grid");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!image.codes) return;
  const codes = grid(image.codes), first = grid(image.first);
  const [h, w] = [codes.length, codes[0].length];
  const ch = canvas.height / h, cw = canvas.width / w;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      if (image.mask[r][c]) {
        ctx.fillStyle = "rgba(230, 60, 60, 0.45)";
        ctx.fillRect(c * cw, r * ch, cw, ch);
      }
      if (codes[r][c] !== first[r][c]) {
        ctx.strokeStyle = "#ffd23f";
        ctx.lineWidth = 4;
        ctx.strokeRect(c * cw + 2, r * ch + 2, cw - 4, ch - 4);
      }
      if (h <= 16) {
        ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
        ctx.font = `${Math.max(9, Math.min(22, cw / 3))}px system-ui`;
        ctx.fillText(String(codes[r][c]), c * cw + 3, r * ch + Math.max(11, cw / 3));
      }
    }
  }
  ctx.strokeStyle = "rgba(255, 255, 255, 0.35)";
  ctx.lineWidth = 1;
  for (let r = 1; r < h; r++) { ctx.beginPath(); ctx.moveTo(0, r * ch); ctx.lineTo(canvas.width, r * ch); ctx.stroke(); }
  for (let c = 1; c < w; c++) { ctx.beginPath(); ctx.moveTo(c * cw, 0); ctx.lineTo(c * cw, canvas.height); ctx.stroke(); }
  if (image.cell && tool() === "edit") {
    const [r, c] = image.cell;
    ctx.strokeStyle = "#2f6fde";
    ctx.lineWidth = 5;
    ctx.strokeRect(c * cw + 1, r * ch + 1, cw - 2, ch - 2);
  }
}

function codeTile(k) {
  // code k as decoded alone, cut from the codebook picture (tiles of the image size, 1 px apart)
  const [H, W] = INFO.image_size;
  const canvas = document.createElement("canvas");
  canvas.width = W;
  canvas.height = H;
  const col = k % INFO.codebook_columns, row = Math.floor(k / INFO.codebook_columns);
  const draw = () => canvas.getContext("2d").drawImage(
    image.book, 1 + col * (W + 1), 1 + row * (H + 1), W, H, 0, 0, W, H);
  if (image.book.complete) draw(); else image.book.addEventListener("load", draw);
  return canvas;
}

async function pickCell(row, col) {
  image.cell = [row, col];
  drawGrid();
  const own = grid(image.codes)[row][col];
  $("cell-info").textContent = `Cell (${row}, ${col}) holds code ${own}. The codes nearest to it in the codebook, each decoded alone; pick one:`;
  const { codes } = await api("/api/neighbours", { query: { code: own, n: 16 } });
  const box = $("candidates");
  box.innerHTML = "";
  for (const k of codes) {
    const b = document.createElement("button");
    b.title = `code ${k}`;
    b.dataset.code = String(k);
    if (k === own) b.classList.add("current");
    b.appendChild(codeTile(k));
    b.onclick = async () => {
      grid(image.codes)[row][col] = k;
      box.querySelectorAll("button").forEach((x) => x.classList.toggle("current", x === b));
      $("cell-info").textContent = `Cell (${row}, ${col}) now holds code ${k}.`;
      try { await decodeImage(); } catch (e) { showError(e); }
    };
    box.appendChild(b);
  }
}

async function redraw() {
  if (!image.codes) return;
  const cells = image.mask.map((row) => row.map((m) => (m ? 1 : 0)));
  if (!cells.flat().some((m) => m)) {
    status("inpaint-status", "Mark some cells first.");
    return;
  }
  try {
    const label = $("sample-label").value;
    // every level of a marked cell is redrawn
    const mask = levels() ? Array.from({ length: INFO.shape[0] }, () => cells) : cells;
    const body = { codes: image.codes, mask, seed: Date.now() % 100000 };
    if (label !== "" && label !== "*") body.label = Number(label);
    const { codes } = await api("/api/inpaint", { json: body });
    image.codes = codes;
    status("inpaint-status", "Redrawn by the prior.");
    await decodeImage();
  } catch (e) {
    status("inpaint-status", e.message, true);
  }
}

function setUpSampling() {
  const select = $("sample-label");
  if (!INFO.prior) {
    $("image-sample-card").querySelector(".controls").hidden = true;
    status("sample-status", `This run has no prior: train one with \`vqvae prior train RUN\`.`);
    return;
  }
  if (INFO.labels) {
    option(select, "*", "every class");
    INFO.labels.forEach((name, i) => option(select, String(i), name));
  } else {
    option(select, "", "(the prior is unconditional)");
  }
  // a masked-token prior draws a grid in a number of passes the user may choose
  $("steps-label").hidden = !INFO.steps;
  $("temperature").oninput = () => {
    $("temperature-value").textContent = Number($("temperature").value).toFixed(1);
  };
  $("sample").onclick = sampleImages;
}

async function sampleImages() {
  const box = $("samples");
  box.innerHTML = "";
  const label = $("sample-label").value;
  const temperature = Number($("temperature").value);
  const seed = Number($("sample-seed").value) || 0;
  const rows = label === "*" ? INFO.labels.map((_, i) => i) : [label === "" ? null : Number(label)];
  status("sample-status", "drawing...");
  try {
    for (const row of rows) {
      const body = { n: rows.length > 1 || row !== null ? 8 : 32, temperature, seed };
      if (row !== null) body.label = row;
      if (INFO.steps && Number($("sample-steps").value) > 0) body.steps = Number($("sample-steps").value);
      const { codes } = await api("/api/sample", { json: body });
      const blob = await api("/api/decode", { json: { codes }, as: "blob" });
      const line = document.createElement("div");
      line.className = "row";
      const name = document.createElement("span");
      name.textContent = row === null ? "" : INFO.labels[row];
      const img = document.createElement("img");
      await setImage(img, blob);
      img.style.height = `${Math.max(64, img.naturalHeight * 3)}px`;
      line.append(name, img);
      box.appendChild(line);
    }
    status("sample-status", `${rows.length > 1 ? "8 per class" : ""} at temperature ${temperature}`);
  } catch (e) {
    status("sample-status", e.message, true);
  }
}

// -- a speech run ---------------------------------------------------------------------------------
async function audioView() {
  $("audio-view").hidden = false;
  const select = $("audio-example");
  const { items, note } = await api("/api/examples");
  if (note) status("audio-status", note);
  for (const item of items.slice(0, 300)) {
    const parts = [`#${item.index}`];
    if (item.label !== null) parts.push(`"${item.label}"`);
    if (item.speaker !== null) parts.push(`by ${item.speaker}`);
    option(select, String(item.index), parts.join(" "));
  }
  const bySpeaker = Object.fromEntries(items.map((x) => [String(x.index), x.speaker]));
  $("audio-pick").onclick = async () => {
    const i = select.value;
    if (i === "") return;
    const blob = await api(`/api/examples/${i}`, { as: "blob" });
    await processClip(blob, `test-${i}.wav`, bySpeaker[i]);
  };
  $("audio-file").onchange = (ev) => {
    const file = ev.target.files[0];
    if (file) processClip(file, file.name, null);
  };
  $("speech-codebook").src = url("/api/codebook");
  $("speech-codebook").onerror = () => { $("speech-codebook").alt = "(no codebook picture for this decoder)"; };
  setUpSpeechSampling();
}

function clip(box, title, blob) {
  const div = document.createElement("div");
  div.className = "clip";
  const h = document.createElement("h3");
  h.textContent = title;
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.preload = "metadata";
  audio.src = URL.createObjectURL(blob);
  const img = document.createElement("img");
  img.alt = `log-mel spectrogram: ${title}`;
  div.append(h, audio, img);
  box.appendChild(div);
  return api("/api/spectrogram", { form: fileForm(blob, "clip.wav"), as: "blob" })
    .then((png) => setImage(img, png));
}

async function processClip(blob, name, ownSpeaker) {
  const box = $("clips");
  box.innerHTML = "";
  showError(null);
  try {
    status("audio-status", "encoding...");
    const { codes } = await api("/api/encode", { form: fileForm(blob, name) });
    $("audio-codes").textContent = codes.flat().join(" ");
    $("audio-count").textContent = `${codes.length} codes`;
    await clip(box, `the recording (${name})`, blob);
    const speakers = INFO.speakers || [null];
    const order = ownSpeaker ? [ownSpeaker, ...speakers.filter((s) => s !== ownSpeaker)] : speakers;
    for (const speaker of order) {
      status("audio-status", `decoding${speaker ? ` as ${speaker}` : ""}...`);
      const wav = await api("/api/decode", { json: { codes, speaker }, as: "blob" });
      const title = speaker === null ? "reconstruction"
        : speaker === ownSpeaker ? `reconstruction (its own speaker, ${speaker})`
        : `converted to ${speaker}`;
      await clip(box, title, wav);
    }
    status("audio-status", ownSpeaker || !INFO.speakers ? "" :
      "An upload's speaker is unknown to the run: every speaker's version is a conversion.");
    box.dataset.done = String(Number(box.dataset.done || 0) + 1);
  } catch (e) {
    status("audio-status", e.message, true);
  }
}

function setUpSpeechSampling() {
  if (!INFO.prior) {
    $("audio-sample-card").querySelector(".controls").hidden = true;
    status("speech-status", "This run has no prior: train one with `vqvae prior train RUN`.");
    return;
  }
  if (INFO.labels) INFO.labels.forEach((name, i) => option($("speech-label"), String(i), name));
  else option($("speech-label"), "", "(unconditional)");
  for (const s of INFO.speakers || []) option($("speech-speaker"), s, s);
  $("speech-temperature").oninput = () => {
    $("speech-temperature-value").textContent = Number($("speech-temperature").value).toFixed(1);
  };
  $("speech-sample").onclick = async () => {
    const label = $("speech-label").value;
    const speaker = INFO.speakers ? $("speech-speaker").value : null;
    const body = { n: 1, temperature: Number($("speech-temperature").value), speaker,
                   seed: Date.now() % 100000 };
    if (label !== "") body.label = Number(label);
    try {
      status("speech-status", "drawing...");
      const { codes } = await api("/api/sample", { json: body });
      const wav = await api("/api/decode", { json: { codes: codes[0], speaker }, as: "blob" });
      $("speech-samples").innerHTML = "";
      const name = label === "" ? "a sample" : `"${INFO.labels[Number(label)]}"`;
      await clip($("speech-samples"), `${name}${speaker ? ` by ${speaker}` : ""}`, wav);
      status("speech-status", "");
    } catch (e) {
      status("speech-status", e.message, true);
    }
  };
}

// -- a frames run: the maze -----------------------------------------------------------------------
const world = { frames: [], busy: false, pending: null, context: 6 };
const KEYS = {
  ArrowUp: "forward", w: "forward", W: "forward", ArrowLeft: "left", a: "left", A: "left",
  ArrowRight: "right", d: "right", D: "right", ArrowDown: "noop", s: "noop", S: "noop",
  " ": "noop", q: "forward_left", Q: "forward_left", e: "forward_right", E: "forward_right",
};

async function framesView() {
  $("frames-view").hidden = false;
  world.context = INFO.context_frames;
  const { items, note } = await api("/api/examples");
  if (note) status("world-status", note);
  for (const item of items) option($("episode"), String(item.index), `episode ${item.index}`);
  for (const name of INFO.actions) {
    const b = document.createElement("button");
    b.textContent = name.replace("_", " ");
    b.dataset.action = name;
    b.onclick = () => step(name);
    $("action-buttons").appendChild(b);
  }
  $("start").onclick = startEpisode;
  document.addEventListener("keydown", (ev) => {
    const action = KEYS[ev.key];
    if (!action || !INFO.actions.includes(action) || ev.target.tagName === "SELECT") return;
    ev.preventDefault();
    step(action);
  });
  if (items.length) await startEpisode();
}

async function startEpisode() {
  try {
    showError(null);
    world.frames = [];
    $("strip").innerHTML = "";
    const { context } = await api(`/api/examples/${$("episode").value}`);
    for (const codes of context) await addFrame(codes, "real");
    status("world-status", `${context.length} real frames; your move.`);
  } catch (e) {
    showError(e);
  }
}

async function addFrame(codes, action) {
  world.frames.push(codes);
  const blob = await api("/api/decode", { json: { codes }, as: "blob" });
  await setImage($("frame"), blob);
  $("frame-number").textContent = String(world.frames.length);
  $("action").textContent = action;
  const fig = document.createElement("figure");
  if (action === "real") fig.className = "real";
  const img = document.createElement("img");
  await setImage(img, blob);
  const cap = document.createElement("figcaption");
  cap.textContent = action;
  fig.append(img, cap);
  $("strip").appendChild(fig);
  $("strip").scrollLeft = $("strip").scrollWidth;
  document.body.dataset.frames = String(world.frames.length);
}

async function step(action) {
  if (!world.frames.length) return;
  if (world.busy) { world.pending = action; return; }
  world.busy = true;
  document.querySelectorAll("#action-buttons button").forEach(
    (b) => b.classList.toggle("pressed", b.dataset.action === action));
  try {
    const t0 = performance.now();
    const context = world.frames.slice(-world.context);
    const { codes } = await api("/api/rollout", { json: { context, action, seed: world.frames.length } });
    await addFrame(codes, action);
    status("world-status", `drawn and decoded in ${Math.round(performance.now() - t0)} ms`);
  } catch (e) {
    status("world-status", e.message, true);
  } finally {
    world.busy = false;
    const next = world.pending;
    world.pending = null;
    if (next) step(next);
  }
}

start();
