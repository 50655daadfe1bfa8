// i2i-compare demo page: draw a label map, send it to the local server (train_scripts/demo/), show every output.
// Plain JavaScript, no libraries; talks to its own server only (the page's Content-Security-Policy allows nothing else).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const UNDO_LIMIT = 50;
  const state = {
    info: null,          // GET /api/models
    size: 256,           // canvas resolution = largest model resolution
    colorIndex: 2,       // selected class (window)
    tool: "rect",
    undo: [],
    drag: null,
    exampleIndex: 0,
    pending: 0,          // translate requests in flight (document.body.dataset.pending, for tests)
    translations: 0,     // finished translate requests (document.body.dataset.translations)
  };
  let canvas, ctx, overlay, octx;

  // ------------------------------------------------------------------ server

  async function api(path, body) {
    const options = body === undefined ? {} :
      {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      throw new Error(`the demo server did not answer (${e.message}); is it still running?`);
    }
    let data;
    try {
      data = await response.json();
    } catch (e) {
      throw new Error(`HTTP ${response.status}: the server's answer is not JSON`);
    }
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    return data;
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function setStatus(text) { $("status").textContent = text; }

  function updatePending(delta) {
    state.pending += delta;
    document.body.dataset.pending = String(state.pending);
    document.body.dataset.translations = String(state.translations);
  }

  // ------------------------------------------------------------------ palette and tools

  const rgb = (c) => `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  const currentColor = () => rgb(state.info.palette[state.colorIndex].color);

  function buildPalette() {
    const box = $("palette");
    box.textContent = "";
    state.info.palette.forEach((entry, i) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "swatch" + (i === state.colorIndex ? " active" : "");
      button.dataset.class = entry.name;
      button.title = `${entry.name}: rgb(${entry.color.join(", ")})`;
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.background = rgb(entry.color);
      button.append(chip, document.createTextNode(entry.name));
      button.addEventListener("click", () => selectClass(i));
      box.append(button);
    });
  }

  function selectClass(i) {
    state.colorIndex = i;
    document.querySelectorAll(".swatch").forEach((b, j) => b.classList.toggle("active", i === j));
  }

  function selectTool(tool) {
    state.tool = tool;
    $("tool-rect").classList.toggle("active", tool === "rect");
    $("tool-brush").classList.toggle("active", tool === "brush");
  }

  // ------------------------------------------------------------------ canvas

  function setupCanvas() {
    canvas = $("canvas");
    overlay = $("overlay");
    for (const c of [canvas, overlay]) {
      c.width = state.size;
      c.height = state.size;
    }
    ctx = canvas.getContext("2d", {willReadFrequently: true});
    octx = overlay.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = rgb(state.info.palette[0].color);
    ctx.fillRect(0, 0, state.size, state.size);
    overlay.addEventListener("pointerdown", pointerDown);
    overlay.addEventListener("pointermove", pointerMove);
    overlay.addEventListener("pointerup", pointerUp);
    overlay.addEventListener("pointercancel", () => { state.drag = null; clearOverlay(); });
  }

  function pixel(event) {
    const box = overlay.getBoundingClientRect();
    const clamp = (v) => Math.min(state.size - 1, Math.max(0, v));
    return {x: clamp(Math.floor((event.clientX - box.left) * state.size / box.width)),
            y: clamp(Math.floor((event.clientY - box.top) * state.size / box.height))};
  }

  function pushUndo() {
    state.undo.push(ctx.getImageData(0, 0, state.size, state.size));
    if (state.undo.length > UNDO_LIMIT) state.undo.shift();
    $("undo").disabled = false;
  }

  function undo() {
    const image = state.undo.pop();
    if (image) ctx.putImageData(image, 0, 0);
    $("undo").disabled = state.undo.length === 0;
  }

  function clearOverlay() { octx.clearRect(0, 0, state.size, state.size); }

  function rectOf(a, b) {
    const x = Math.min(a.x, b.x), y = Math.min(a.y, b.y);
    return [x, y, Math.abs(a.x - b.x) + 1, Math.abs(a.y - b.y) + 1];
  }

  function stamp(p) {
    const s = Number($("brush-size").value);
    const h = Math.floor(s / 2);
    ctx.fillStyle = currentColor();
    ctx.fillRect(p.x - h, p.y - h, s, s);  // squares: no anti-aliasing, the map stays in the 12 colours
  }

  function strokeTo(from, to) {
    const steps = Math.max(Math.abs(to.x - from.x), Math.abs(to.y - from.y), 1);
    for (let i = 1; i <= steps; i++) {
      stamp({x: Math.round(from.x + (to.x - from.x) * i / steps), y: Math.round(from.y + (to.y - from.y) * i / steps)});
    }
  }

  function pointerDown(event) {
    if (event.button !== 0) return;
    overlay.setPointerCapture(event.pointerId);
    const p = pixel(event);
    pushUndo();
    state.drag = {start: p, last: p};
    if (state.tool === "brush") stamp(p);
    else drawPreview(p, p);
  }

  function pointerMove(event) {
    if (!state.drag) return;
    const p = pixel(event);
    if (state.tool === "brush") strokeTo(state.drag.last, p);
    else drawPreview(state.drag.start, p);
    state.drag.last = p;
  }

  function pointerUp(event) {
    if (!state.drag) return;
    const p = pixel(event);
    if (state.tool === "rect") {
      ctx.fillStyle = currentColor();
      ctx.fillRect(...rectOf(state.drag.start, p));
      clearOverlay();
    } else {
      strokeTo(state.drag.last, p);
    }
    state.drag = null;
  }

  function drawPreview(a, b) {
    clearOverlay();
    const [x, y, w, h] = rectOf(a, b);
    octx.fillStyle = currentColor();
    octx.globalAlpha = 0.75;
    octx.fillRect(x, y, w, h);
    octx.globalAlpha = 1;
    octx.strokeStyle = "#fff";
    octx.lineWidth = Math.max(1, state.size / 256);
    octx.strokeRect(x + 0.5, y + 0.5, Math.max(w - 1, 1), Math.max(h - 1, 1));
  }

  function clearCanvas() {
    pushUndo();
    ctx.fillStyle = rgb(state.info.palette[0].color);  // background
    ctx.fillRect(0, 0, state.size, state.size);
    $("canvas-info").textContent = "";
  }

  function drawDataUrl(url, info) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => {
        pushUndo();
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(image, 0, 0, state.size, state.size);
        $("canvas-info").textContent = info || "";
        resolve();
      };
      image.onerror = () => reject(new Error("the label map image could not be shown"));
      image.src = url;
    });
  }

  async function loadExample(index) {
    try {
      const data = await api(`/api/example?index=${index}`);
      state.exampleIndex = data.index;
      await drawDataUrl(data.image, `example: ${data.name}`);
      showError("");
    } catch (e) {
      showError(`load an example: ${e.message}`);
    }
  }

  function readFile(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
      reader.readAsDataURL(file);
    });
  }

  async function upload(event) {
    const file = event.target.files[0];
    event.target.value = "";  // choosing the same file again fires again
    if (!file) return;
    try {
      if (file.size > state.info.limits.max_body_bytes * 0.7) {
        throw new Error(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB, over the server's limit`);
      }
      const data = await api("/api/label", {image: await readFile(file)});
      const notes = data.notes.length ? ` (${data.notes.join("; ")})` : "";
      await drawDataUrl(data.image, `uploaded ${file.name}, ${data.width}x${data.height}${notes}`);
      showError("");
    } catch (e) {
      showError(`${file.name}: ${e.message}`);
    }
  }

  // ------------------------------------------------------------------ models and outputs

  function numberInput(name, label, value, attrs) {
    const wrap = document.createElement("label");
    wrap.className = "setting";
    wrap.textContent = label + " ";
    const input = document.createElement("input");
    input.type = "number";
    input.name = name;
    input.value = value === null || value === undefined ? "" : String(value);
    Object.assign(input, attrs || {});
    wrap.append(input);
    return wrap;
  }

  function buildModelList() {
    const list = $("model-list");
    list.textContent = "";
    if (!state.info.models.length) {
      list.innerHTML = "<p class='muted'>No model could be loaded.</p>";
      return;
    }
    for (const m of state.info.models) {
      const row = document.createElement("div");
      row.className = "model";
      row.dataset.model = m.name;
      const check = document.createElement("label");
      check.className = "model-name";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.className = "select-model";
      box.value = m.name;
      const title = document.createElement("strong");
      title.textContent = m.name;
      const meta = document.createElement("span");
      meta.className = "muted";
      meta.textContent = ` ${m.model}, ${m.resolution} px${m.preset ? ", " + m.preset : ""}` +
        (m.finished ? "" : " (unfinished)");
      meta.title = m.run_dir;
      check.append(box, " ", title, meta);
      row.append(check);
      if (m.diffusion || m.seeded) {
        const settings = document.createElement("div");
        settings.className = "settings";
        const d = m.defaults;
        if (m.diffusion) {
          const sampler = document.createElement("label");
          sampler.className = "setting";
          sampler.textContent = "sampler ";
          const select = document.createElement("select");
          select.name = "sampler";
          for (const s of m.choices.sampler || []) select.append(new Option(s, s, s === d.sampler, s === d.sampler));
          sampler.append(select);
          settings.append(
            sampler,
            numberInput("sampling_steps", "steps", d.sampling_steps,
                        {min: 1, max: state.info.limits.max_sampling_steps, step: 1}),
            numberInput("eta", "eta", d.eta, {min: 0, step: 0.1}));
          const guidance = numberInput("guidance", "guidance", d.guidance, {min: 0, step: 0.5});
          guidance.title = "classifier-free guidance weight (a run trained with condition dropout only)";
          settings.append(guidance);
        }
        const seed = numberInput("seed", "seed", d.seed, {min: 0, step: 1, placeholder: "run's"});
        seed.title = m.diffusion ? "the sampler's seed" : "seed of the test-time noise (empty: the run's own)";
        settings.append(seed);
        row.append(settings);
      }
      list.append(row);
    }
  }

  function selectedModels() {
    return [...document.querySelectorAll(".select-model")].filter((b) => b.checked).map((b) => b.value);
  }

  function modelInfo(name) { return state.info.models.find((m) => m.name === name); }

  function readSettings(name) {
    const row = document.querySelector(`.model[data-model="${CSS.escape(name)}"]`);
    const settings = {};
    if (!row) return settings;
    for (const input of row.querySelectorAll(".settings input, .settings select")) {
      if (input.disabled || input.value === "") continue;
      settings[input.name] = input.tagName === "SELECT" ? input.value : Number(input.value);
    }
    return settings;
  }

  function card(name) {
    let figure = document.querySelector(`.card[data-model="${CSS.escape(name)}"]`);
    if (!figure) {
      figure = document.createElement("figure");
      figure.className = "card";
      figure.dataset.model = name;
      $("outputs").append(figure);
    }
    return figure;
  }

  function placeOutputs(names, label) {
    const outputs = $("outputs");
    const placeholder = outputs.querySelector("p");
    if (placeholder) placeholder.remove();
    let input = outputs.querySelector(".card.input");
    if (!input) {
      input = document.createElement("figure");
      input.className = "card input";
      input.innerHTML = "<img alt='label map'><figcaption><strong>label map</strong></figcaption>";
      outputs.prepend(input);
    }
    if (label) input.querySelector("img").src = label;
    for (const m of state.info.models) {  // cards in model order
      if (names.includes(m.name)) outputs.append(card(m.name));
    }
  }

  function showPending(name) {
    const figure = card(name);
    figure.classList.add("busy");
    figure.classList.remove("failed");
    if (!figure.querySelector("img")) {
      figure.innerHTML = `<div class="placeholder">translating&hellip;</div><figcaption><strong></strong></figcaption>`;
      figure.querySelector("strong").textContent = name;
    }
  }

  function segmentationLine(output, segmentation) {
    // how well the output follows the drawn label map: the facade parser's reading of it, or why it is missing
    const line = document.createElement("span");
    line.className = "muted segmentation";
    const score = output.segmentation;
    if (score) {
      const show = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
      line.textContent = `follows the drawing: seg mIoU ${show(score.seg_miou)}, pixel accuracy ${show(score.seg_acc)}`;
      line.title = "the facade parser's class map of this output against the drawn label map (higher is closer)";
    } else {
      line.textContent = (segmentation && segmentation.note) || "the segmentation score is unavailable";
    }
    return line;
  }

  function showOutput(output, segmentation) {
    const m = modelInfo(output.model);
    const figure = card(output.model);
    figure.className = "card";
    figure.textContent = "";
    const image = document.createElement("img");
    image.className = "output";
    image.alt = `${output.model} output`;
    image.src = output.image;
    image.width = image.height = 256;
    const caption = document.createElement("figcaption");
    const title = document.createElement("strong");
    title.textContent = output.model;
    const ms = document.createElement("span");
    ms.className = "ms";
    ms.textContent = `${Math.round(output.ms)} ms`;
    const details = document.createElement("span");
    details.className = "muted details";
    const s = output.settings || {};
    const parts = [`${output.resolution} px`];
    if (m && m.diffusion) parts.push(`${s.sampler}, ${s.sampling_steps} steps, eta ${s.eta}` +
                                     (s.guidance ? `, w ${s.guidance}` : ""));
    if (s.seed !== undefined && s.seed !== null) parts.push(`seed ${s.seed}`);
    details.textContent = parts.join(" · ");
    const download = document.createElement("a");
    download.href = output.image;
    download.download = `${output.model.replace(/[^\w.-]+/g, "_")}${s.seed != null ? "-seed" + s.seed : ""}.png`;
    download.textContent = "PNG";
    download.className = "download";
    download.title = "download this output as PNG";
    caption.append(title, " ", ms, document.createElement("br"), details, " ", download,
                   document.createElement("br"), segmentationLine(output, segmentation));
    if (m && m.seeded) {
      const again = document.createElement("button");
      again.type = "button";
      again.className = "again";
      again.textContent = "Sample again";
      again.title = "another photo of the same label map (new seed)";
      again.addEventListener("click", () => sampleAgain(output.model));
      caption.append(" ", again);
    }
    figure.dataset.seed = s.seed != null ? String(s.seed) : "";
    figure.append(image, caption);
  }

  function showFailure(name, message) {
    const figure = card(name);
    figure.className = "card failed";
    figure.textContent = "";
    const box = document.createElement("div");
    box.className = "placeholder";
    box.textContent = message;
    const caption = document.createElement("figcaption");
    const title = document.createElement("strong");
    title.textContent = name;
    caption.append(title);
    figure.append(box, caption);
  }

  async function translateOne(name, label) {
    showPending(name);
    updatePending(+1);
    try {
      const data = await api("/api/translate", {label, models: [name], settings: {[name]: readSettings(name)}});
      for (const output of data.outputs) showOutput(output, data.segmentation);
      return null;
    } catch (e) {
      showFailure(name, e.message);
      return `${name}: ${e.message}`;
    } finally {
      state.translations += 1;
      updatePending(-1);
    }
  }

  async function translate(names) {
    names = names || selectedModels();
    if (!names.length) {
      showError("Select at least one model.");
      return;
    }
    const label = canvas.toDataURL("image/png");
    placeOutputs(names, label);
    setStatus(`translating with ${names.length} model(s)…`);
    const started = performance.now();
    // one request per model, all at once: each output appears as soon as its model is done
    const errors = (await Promise.all(names.map((n) => translateOne(n, label)))).filter(Boolean);
    showError(errors.join("\n"));
    setStatus(`${names.length - errors.length} of ${names.length} translated in ` +
              `${((performance.now() - started) / 1000).toFixed(1)} s`);
  }

  function sampleAgain(name) {
    const input = document.querySelector(`.model[data-model="${CSS.escape(name)}"] input[name="seed"]`);
    const seed = crypto.getRandomValues(new Uint32Array(1))[0] % 2147483647;
    if (input) input.value = String(seed);
    const row = document.querySelector(`.model[data-model="${CSS.escape(name)}"] .select-model`);
    translate([name]);
    if (row) row.checked = true;
  }

  function showFailedRuns() {
    const box = $("failed");
    const failed = state.info.failed;
    box.hidden = !failed.length;
    box.textContent = "";
    if (!failed.length) return;
    const head = document.createElement("strong");
    head.textContent = `${failed.length} run(s) could not be loaded:`;
    const list = document.createElement("ul");
    for (const f of failed) {
      const item = document.createElement("li");
      const path = document.createElement("code");
      path.textContent = f.run_dir;
      item.append(path, ": " + f.error);
      list.append(item);
    }
    box.append(head, list);
  }

  // ------------------------------------------------------------------ start

  async function start() {
    updatePending(0);
    try {
      state.info = await api("/api/models");
    } catch (e) {
      showError(`cannot load the models: ${e.message}`);
      setStatus("");
      return;
    }
    state.size = state.info.canvas_size;
    buildPalette();
    setupCanvas();
    buildModelList();
    showFailedRuns();
    $("tool-rect").addEventListener("click", () => selectTool("rect"));
    $("tool-brush").addEventListener("click", () => selectTool("brush"));
    $("brush-size").addEventListener("input", (e) => { $("brush-size-value").textContent = e.target.value; });
    $("undo").addEventListener("click", undo);
    $("undo").disabled = true;
    $("clear").addEventListener("click", clearCanvas);
    $("example").addEventListener("click", () => loadExample(state.exampleIndex + 1));
    $("upload").addEventListener("change", upload);
    $("translate").addEventListener("click", () => translate());
    document.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
      if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); }
      else if (e.key === "r") selectTool("rect");
      else if (e.key === "b") selectTool("brush");
    });
    await loadExample(0);
    state.undo = [];
    $("undo").disabled = true;
    $("translate").disabled = !state.info.models.length;
    setStatus(`${state.info.models.length} model(s) ready; canvas ${state.size}x${state.size} px`);
    document.body.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", start);
})();
