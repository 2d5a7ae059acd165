// The studio page: the label map lives here as class indices (one per generator pixel); the
// canvas shows it in the dataset's colours. Every request carries the whole map.
"use strict";
const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const context = canvas.getContext("2d");
let info = null;
let label = null;           // Int32Array(height * width)
let current = 0;            // selected class
let style = null;           // data URL of the style image
const history = [];         // undo stack of label copies
let generation = 0;         // answers received (the tests wait on document.body.dataset)
let pending = null;

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
  }
  return path.endsWith(".png") ? response.blob() : response.json();
}

function render() {
  const {width, height} = info;
  const image = context.createImageData(width, height);
  for (let i = 0; i < label.length; i++) {
    const color = info.classes[label[i]].color;
    image.data.set([color[0], color[1], color[2], 255], 4 * i);
  }
  context.putImageData(image, 0, 0);
}

function pushHistory() {
  history.push(label.slice());
  if (history.length > 100) history.shift();
}

function setLabel(values, remember = true) {
  if (remember && label) pushHistory();
  label = Int32Array.from(values);
  render();
  changed();
}

function stamp(x, y) {
  const {width, height} = info;
  const radius = Number($("brush").value) / 2;
  for (let j = Math.floor(y - radius); j <= Math.ceil(y + radius); j++) {
    for (let i = Math.floor(x - radius); i <= Math.ceil(x + radius); i++) {
      if (i < 0 || j < 0 || i >= width || j >= height) continue;
      const dx = i + 0.5 - x, dy = j + 0.5 - y;
      if (dx * dx + dy * dy <= Math.max(radius * radius, 0.25)) label[j * width + i] = current;
    }
  }
}

function fill(x, y) {
  const {width, height} = info;
  const start = Math.floor(y) * width + Math.floor(x);
  const target = label[start];
  if (target === current) return;
  const stack = [start];
  while (stack.length) {
    const p = stack.pop();
    if (label[p] !== target) continue;
    label[p] = current;
    const i = p % width, j = (p - i) / width;
    if (i > 0) stack.push(p - 1);
    if (i < width - 1) stack.push(p + 1);
    if (j > 0) stack.push(p - width);
    if (j < height - 1) stack.push(p + width);
  }
}

function toMap(event) {
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) / box.width) * info.width,
    ((event.clientY - box.top) / box.height) * info.height,
  ];
}

let last = null;
canvas.addEventListener("pointerdown", (event) => {
  const [x, y] = toMap(event);
  pushHistory();
  if (document.querySelector("input[name=tool]:checked").value === "fill") {
    fill(x, y);
    render();
    changed();
    return;
  }
  canvas.setPointerCapture(event.pointerId);
  last = [x, y];
  stamp(x, y);
  render();
});
canvas.addEventListener("pointermove", (event) => {
  if (!last) return;
  const [x, y] = toMap(event);
  // Stamps every half pixel along the segment: fast strokes leave no gaps.
  const steps = Math.max(1, Math.ceil(2 * Math.hypot(x - last[0], y - last[1])));
  for (let s = 1; s <= steps; s++) {
    stamp(last[0] + ((x - last[0]) * s) / steps, last[1] + ((y - last[1]) * s) / steps);
  }
  last = [x, y];
  render();
});
const endStroke = () => { if (last) { last = null; changed(); } };
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

function changed() {
  if ($("auto").checked) generate();
}

async function generate() {
  const body = {
    label: Array.from(label),
    seed: Number($("seed").value) || 0,
    k: Math.max(1, Math.min(info.max_samples, Number($("k").value) || 1)),
    style,
  };
  const request = (pending = api("/api/synthesize", body));
  try {
    const result = await request;
    if (request !== pending) return;  // a newer stroke's answer is on its way
    showOutputs(result.runs);
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = error.message;
  } finally {
    generation += 1;
    document.body.dataset.generation = String(generation);
  }
}

function showOutputs(runs) {
  const outputs = $("outputs");
  outputs.replaceChildren();
  runs.forEach((run, r) => {
    const column = document.createElement("div");
    column.className = "run";
    column.innerHTML = `<h2></h2><div class="samples"></div><p class="note"></p>`;
    column.querySelector("h2").textContent = run.name;
    column.querySelector(".note").textContent = run.note;
    run.images.forEach((src, k) => {
      const link = document.createElement("a");
      link.href = src;
      link.download = `${run.name}_seed${$("seed").value}_${k}.png`;
      const img = document.createElement("img");
      img.src = src;
      img.className = "output";
      img.dataset.run = String(r);
      link.appendChild(img);
      column.querySelector(".samples").appendChild(link);
    });
    outputs.appendChild(column);
  });
}

function readFile(input) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(input.files[0]);
  });
}

function download(href, name) {
  const link = document.createElement("a");
  link.href = href;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
}

$("brush").addEventListener("input", () => { $("brush-value").textContent = $("brush").value; });
$("undo").addEventListener("click", () => {
  if (!history.length) return;
  label = history.pop();
  render();
  changed();
});
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); $("undo").click(); }
});
$("blank").addEventListener("click", () => setLabel(new Int32Array(label.length).fill(current)));
$("upload").addEventListener("change", async () => {
  try {
    setLabel((await api("/api/label", {png: await readFile($("upload"))})).label);
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = error.message;
  }
  $("upload").value = "";
});
$("load-validation").addEventListener("click", async () => {
  setLabel((await api(`/api/validation/${$("validation").value}`)).label);
});
$("generate").addEventListener("click", generate);
$("style").addEventListener("change", async () => { style = await readFile($("style")); generate(); });
$("clear-style").addEventListener("click", () => { style = null; $("style").value = ""; generate(); });
$("download-label").addEventListener("click", async () => {
  const blob = await api("/api/label.png", {label: Array.from(label)});
  download(URL.createObjectURL(blob), "label_map.png");
});
$("download-image").addEventListener("click", () => {
  const first = document.querySelector("#outputs img.output");
  if (first) download(first.src, first.parentElement.download);
});

(async () => {
  info = await api("/api/info");
  canvas.width = info.width;
  canvas.height = info.height;
  $("size").textContent = `${info.width}x${info.height}, ${info.runs.map((r) => r.name).join(" | ")}`;
  const palette = $("palette");
  info.classes.forEach((cls) => {
    const button = document.createElement("button");
    button.className = "swatch";
    button.dataset.class = String(cls.index);
    button.dataset.name = cls.name;
    button.innerHTML = `<span class="chip"></span><span class="name"></span>`;
    button.querySelector(".chip").style.background = `rgb(${cls.color.join(",")})`;
    button.querySelector(".name").textContent = cls.name;
    button.addEventListener("click", () => {
      current = cls.index;
      palette.querySelectorAll(".swatch").forEach((b) => b.classList.toggle("active", b === button));
    });
    palette.appendChild(button);
  });
  palette.firstChild.classList.add("active");
  for (let i = 0; i < info.validation; i++) {
    $("validation").add(new Option(`validation map ${i}`, String(i)));
  }
  $("validation").disabled = $("load-validation").disabled = info.validation === 0;
  $("vae-controls").hidden = !info.runs.some((r) => r.vae);
  $("k").max = String(info.max_samples);
  $("k").disabled = !info.runs.some((r) => r.diverse);
  $("notes").textContent = info.notes.join("; ");
  label = new Int32Array(info.width * info.height);
  if (info.validation > 0) label = Int32Array.from((await api("/api/validation/0")).label);
  render();
  document.body.dataset.ready = "1";
  await generate();
})();
