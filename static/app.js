// The page: a drawing pad and an image drop zone, both sent to POST /api/read, and the answer drawn
// as boxes over the image, the text under it and a table of words with their confidence.
"use strict";

const WEAK_CONFIDENCE = 0.5;  // readings below this are marked for checking by hand
const MAX_SIDE = 4096;  // pixels: larger images are scaled down before they are sent
const INK_WIDTH = 8;  // pad pixels: a tenth to a sixth of the letter height of a word written across half the pad, as in the training words

const $ = (id) => document.getElementById(id);
const pad = $("pad"), padContext = pad.getContext("2d");
let maxUploadBytes = 20 * 1024 * 1024;
let lastImage = null;  // {blob, canvas, name} of the last image read, read again when the decoder changes
let downloadURLs = [];  // the XML files offered for the last reading

// ---- the drawing pad: pointer events, so a mouse, a pen and a finger all draw ----
function clearPad() {
  padContext.fillStyle = "white";
  padContext.fillRect(0, 0, pad.width, pad.height);
  pad.dataset.ink = "";
}

function padPoint(event) {
  const rect = pad.getBoundingClientRect();
  return [(event.clientX - rect.left) * pad.width / rect.width, (event.clientY - rect.top) * pad.height / rect.height];
}

let lastPoint = null;
pad.addEventListener("pointerdown", (event) => {
  pad.setPointerCapture(event.pointerId);
  lastPoint = padPoint(event);
  drawTo(lastPoint);  // a dot, for a click or a tap
  event.preventDefault();
});
pad.addEventListener("pointermove", (event) => {
  if (!lastPoint) return;
  // A fast stroke brings several positions per frame: follow them all, not only the last.
  const events = event.getCoalescedEvents?.() ?? [];
  for (const e of events.length ? events : [event]) drawTo(padPoint(e));
});
for (const type of ["pointerup", "pointercancel"]) pad.addEventListener(type, () => { lastPoint = null; });

function drawTo(point) {
  padContext.strokeStyle = "black";
  padContext.lineWidth = INK_WIDTH;
  padContext.lineCap = padContext.lineJoin = "round";
  padContext.beginPath();
  padContext.moveTo(...lastPoint);
  padContext.lineTo(point[0] + 0.01, point[1]);
  padContext.stroke();
  lastPoint = point;
  pad.dataset.ink = "yes";
}

$("clear").addEventListener("click", clearPad);
$("read-drawing").addEventListener("click", async () => {
  if (!pad.dataset.ink) return showError("Draw a word on the pad first.");
  const copy = document.createElement("canvas");  // the pad goes on changing; read what it shows now
  copy.width = pad.width;
  copy.height = pad.height;
  copy.getContext("2d").drawImage(pad, 0, 0);
  read(await canvasBlob(copy, "image/png"), copy, "drawing.png");
});

// ---- images: a dropped or chosen file ----
const dropZone = $("drop-zone");
$("file").addEventListener("change", (event) => {
  if (event.target.files.length) readFile(event.target.files[0]);
  event.target.value = "";  // choosing the same file again reads it again
});
// A file dropped anywhere on the page is read (left alone, the browser would leave the page to show it).
window.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("hover"); });
window.addEventListener("dragleave", (event) => { if (!event.relatedTarget) dropZone.classList.remove("hover"); });
window.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("hover");
  const file = event.dataTransfer.files[0];
  if (file) readFile(file);
  else showError("Drop an image file (a picture dragged from another page arrives as a link, not as a file).");
});

// The page sends an image as the browser shows it: upright (phones save photos sideways with an
// EXIF note to turn them, which the server's OpenCV does not follow, so the boxes would not fit the
// picture shown), at most MAX_SIDE pixels a side, as PNG or JPEG (the browser also opens WebP, GIF,
// AVIF...). A file the browser cannot open goes as it is, and the server says what is wrong with it.
async function readFile(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return read(file, null, file.name);
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const context = canvas.getContext("2d");
  context.fillStyle = "white";  // transparent parts are paper
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const photo = file.type === "image/jpeg" || file.type === "image/heic" || file.type === "image/webp";
  read(await canvasBlob(canvas, photo ? "image/jpeg" : "image/png"), canvas, file.name);
}

function canvasBlob(canvas, type) {
  return new Promise((resolve) => canvas.toBlob(resolve, type, 0.95));
}

// ---- the API ----
async function read(blob, canvas, name) {
  lastImage = {blob, canvas, name};
  if (blob.size > maxUploadBytes) {
    return showError(`The image is ${(blob.size / 2 ** 20).toFixed(1)} MB; the limit is ${maxUploadBytes / 2 ** 20} MB.`);
  }
  showError("");
  $("status").textContent = "Reading…";
  document.body.classList.add("busy");
  try {
    const query = `decoder=${encodeURIComponent($("decoder").value)}&name=${encodeURIComponent(name)}`;
    const response = await fetch(`/api/read?${query}`, {
      method: "POST",
      headers: {"Content-Type": blob.type || "application/octet-stream"},
      body: blob,
    });
    const answer = await response.json().catch(() => ({error: `the server answered ${response.status} without JSON`}));
    if (!response.ok) return showError(`Cannot read this image: ${answer.error}`);
    showResult(answer, canvas);
    offerDownloads(answer, name);
  } catch (error) {
    showError(`The server did not answer (${error.message}). Is python app.py still running?`);
  } finally {
    document.body.classList.remove("busy");
  }
}

$("decoder").addEventListener("change", () => { if (lastImage) read(lastImage.blob, lastImage.canvas, lastImage.name); });

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
  if (message) $("result").hidden = true;
}

// ---- the answer ----
function showResult(answer, canvas) {
  const words = answer.words;
  const weak = words.filter((word) => word.confidence < WEAK_CONFIDENCE).length;
  $("status").textContent = words.length
    ? `${words.length} word${words.length === 1 ? "" : "s"} in ${answer.seconds} s with the ${answer.decoder} decoder` +
      (weak ? `; ${weak} marked ? read with a confidence under ${WEAK_CONFIDENCE * 100}%: check them.` : ".")
    : `No writing found (${answer.decoder} decoder). Dark ink on light paper reads best.`;

  const shown = $("shown"), boxes = $("boxes");
  $("figure").hidden = !canvas;
  $("result").hidden = false;  // before fitFigure measures it
  if (canvas) {
    shown.width = canvas.width;
    shown.height = canvas.height;
    shown.getContext("2d").drawImage(canvas, 0, 0);
    boxes.setAttribute("viewBox", `0 0 ${canvas.width} ${canvas.height}`);
    fitFigure();
  }
  boxes.replaceChildren(...words.map((word, i) => {
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const [x, y, w, h] = word.box;
    Object.entries({x, y, width: w, height: h, "data-word": i}).forEach(([k, v]) => rect.setAttribute(k, v));
    rect.classList.toggle("weak", word.confidence < WEAK_CONFIDENCE);
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${word.text} (${percent(word.confidence)})`;
    rect.append(title);
    return rect;
  }));

  // The text, line by line, each word a span that lights up its box when pointed at.
  const text = $("text");
  text.replaceChildren();
  words.forEach((word, i) => {
    if (i > 0) text.append(word.line !== words[i - 1].line ? document.createElement("br") : " ");
    text.append(wordSpan(word, i));
  });

  $("words").tBodies[0].replaceChildren(...words.map((word, i) => {
    const row = document.createElement("tr");
    row.dataset.word = i;
    const confidence = document.createElement("td");
    confidence.textContent = percent(word.confidence) + (word.confidence < WEAK_CONFIDENCE ? " ? check" : "");
    row.append(cell(word.line + 1), cell(""), confidence);
    row.children[1].append(wordSpan(word, i));
    row.classList.toggle("weak", word.confidence < WEAK_CONFIDENCE);
    return row;
  }));
  $("words").hidden = !words.length;
}

// The reading as files for other tools, as the server wrote them: ALTO and PAGE XML, named after the image.
function offerDownloads(answer, name) {
  downloadURLs.forEach((url) => URL.revokeObjectURL(url));
  const stem = name.replace(/\.[^.]*$/, "") || "reading";
  downloadURLs = [["download-alto", answer.alto_xml, ".alto.xml"], ["download-page", answer.page_xml, ".page.xml"]].map(([id, xml, ending]) => {
    const url = URL.createObjectURL(new Blob([xml], {type: "application/xml"}));
    Object.assign($(id), {href: url, download: stem + ending});
    return url;
  });
}

// The image as large as the page is wide and at most 70% as high as the window (a word grows, a page shrinks).
function fitFigure() {
  const shown = $("shown");
  if (!shown.width || $("figure").hidden) return;
  const scale = Math.min($("figure").clientWidth / shown.width, 0.7 * window.innerHeight / shown.height, 4);
  shown.style.width = `${shown.width * scale}px`;
  shown.style.height = `${shown.height * scale}px`;
}
window.addEventListener("resize", fitFigure);

function wordSpan(word, i) {
  const span = document.createElement("span");
  span.className = "word" + (word.confidence < WEAK_CONFIDENCE ? " weak" : "");
  span.textContent = word.text || "∅";
  span.title = `confidence ${percent(word.confidence)}`;
  span.dataset.word = i;
  span.addEventListener("pointerenter", () => highlight(i, true));
  span.addEventListener("pointerleave", () => highlight(i, false));
  return span;
}

function highlight(i, on) {
  document.querySelectorAll(`[data-word="${i}"]`).forEach((element) => element.classList.toggle("lit", on));
}

function cell(content) {
  const td = document.createElement("td");
  td.textContent = content;
  return td;
}

function percent(confidence) {
  return `${Math.round(confidence * 100)}%`;
}

// ---- start: which model and decoders the server has ----
const DECODER_LABELS = {greedy: "greedy (fastest)", beam: "beam search", lexicon: "lexicon (the training words)"};
clearPad();
fetch("/api/info").then((response) => response.json()).then((info) => {
  maxUploadBytes = info.max_upload_bytes;
  $("model").textContent = `Model: ${info.model}`;
  $("decoder").replaceChildren(...info.decoders.map((name) => new Option(DECODER_LABELS[name] || name, name)));
}).catch(() => showError("Cannot reach the server. Start it with python app.py and reload this page."));
