// The slm-api page: chat (streamed) and extraction, through the public API like any client.
// Replies and errors are put on the page as text (textContent), never as HTML.
"use strict";

const KEY_STORAGE = "slm-api-key";
const $ = (id) => document.getElementById(id);

const SCHEMAS = {
  "Order": {
    type: "object",
    properties: {
      order_id: { type: "integer" },
      customer: { type: "string", maxLength: 40 },
      status: { type: "string", enum: ["pending", "shipped", "delivered"] },
      total: { type: "number" },
    },
    required: ["order_id", "customer", "status"],
  },
  "Person": {
    type: "object",
    properties: {
      name: { type: "string", maxLength: 40 },
      age: { type: "integer", minimum: 0, maximum: 150 },
      city: { type: "string", maxLength: 40 },
    },
    required: ["name", "age"],
  },
  "Event": {
    type: "object",
    properties: {
      title: { type: "string", maxLength: 60 },
      date: { type: "string", format: "date" },
    },
    required: ["title", "date"],
  },
  "Sentiment": {
    type: "object",
    properties: { sentiment: { enum: ["positive", "neutral", "negative"] } },
    required: ["sentiment"],
  },
};

// -- talking to the server ----------------------------------------------------------------

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = localStorage.getItem(KEY_STORAGE);
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
  }
}

async function api(path, options = {}) {
  const resp = await fetch(path, { ...options, headers: headers() });
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON: the status says enough */ }
    const error = new ApiError(resp.status, body);
    if (resp.status === 401) needKey(error.message);
    throw error;
  }
  return resp;
}

function showBanner(text) {
  const banner = $("banner");
  banner.textContent = text;
  banner.hidden = !text;
}

function needKey(message) {
  showBanner(`This server needs an API key (${message}). Type it in the “API key” field.`);
  $("api-key").focus();
}

// -- models -------------------------------------------------------------------------------

async function loadModels() {
  const select = $("model");
  let active = null;
  try {
    active = (await (await fetch("/health", { headers: headers() })).json()).model;
  } catch (_) { /* /health may be protected; the list below still works with a key */ }
  try {
    const list = await (await api("/v1/models/chat")).json();
    const previous = select.value;
    select.replaceChildren();
    for (const m of list.data) {
      const option = new Option(m.loaded ? `${m.id} (loaded)` : m.id, m.id);
      select.add(option);
    }
    select.value = list.data.some((m) => m.id === previous) ? previous : (active || "");
    if (!select.value && list.data.length) select.value = list.data[0].id;
    $("server-status").textContent = list.data.length ? "" : "no model in MODELS_DIR";
    if (!$("banner").textContent.startsWith("Error")) showBanner("");
  } catch (e) {
    $("server-status").textContent = e.status === 401 ? "API key needed" : `models: ${e.message}`;
  }
}

// -- chat ---------------------------------------------------------------------------------

const conversation = [];
let running = null; // the AbortController of the generation in progress

function thumbnail(url) {
  const img = document.createElement("img");
  img.className = "thumb";
  img.alt = "attached image";
  img.src = url; // a data: URL (the page's CSP allows img-src data:)
  return img;
}

function addMessage(role, text, image = null) {
  const placeholder = document.querySelector("#messages .placeholder");
  if (placeholder) placeholder.remove();
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  if (image) div.append(thumbnail(image));
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  div.append(body);
  $("messages").append(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function setStats(ttftMs, tokensPerS, tokens) {
  $("stat-ttft").textContent = ttftMs == null ? "–" : `${Math.round(ttftMs)} ms`;
  $("stat-tps").textContent = tokensPerS == null ? "–" : tokensPerS.toFixed(1);
  $("stat-tokens").textContent = tokens == null ? "–" : String(tokens);
}

// Server-Sent Events from a fetch body: calls onData with each parsed `data:` payload.
async function readEvents(resp, onData) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onData(JSON.parse(data));
      }
    }
  }
}

// -- an attached image (picked or pasted), sent as an image_url part with a data: URL ------

let attached = null; // the data: URL of the image the next message carries

function attach(file) {
  if (!file || !file.type.startsWith("image/")) return;
  const reader = new FileReader();
  reader.onload = () => {
    attached = reader.result;
    const box = $("attachments");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove image";
    remove.addEventListener("click", detach);
    box.replaceChildren(thumbnail(attached), remove);
    box.hidden = false;
  };
  reader.readAsDataURL(file);
}

function detach() {
  attached = null;
  $("attachments").replaceChildren();
  $("attachments").hidden = true;
  $("image-file").value = "";
}

async function send(text) {
  const system = $("system").value.trim();
  const image = attached;
  detach();
  conversation.push({
    role: "user",
    content: image ? [{ type: "text", text }, { type: "image_url", image_url: { url: image } }]
      : text,
  });
  addMessage("user", text, image);
  const reply = addMessage("assistant", "");
  reply.dataset.state = "streaming";
  const body = reply.querySelector(".body");
  const meta = document.createElement("div");
  meta.className = "meta muted";
  reply.append(meta);

  const request = {
    messages: system ? [{ role: "system", content: system }, ...conversation] : conversation,
    temperature: Number($("temperature").value),
    max_tokens: Number($("max-tokens").value),
    stream: true,
    stream_options: { include_usage: true },
  };
  if ($("model").value) request.model = $("model").value;

  running = new AbortController();
  $("send").hidden = true;
  $("stop").hidden = false;
  setStats(null, null, null);
  const started = performance.now();
  let first = null, last = null, answer = "", finish = null, usage = null;
  try {
    const resp = await api("/v1/chat/completions", {
      method: "POST", body: JSON.stringify(request), signal: running.signal,
    });
    await readEvents(resp, (event) => {
      if (event.error) throw new ApiError(200, event);
      if (event.usage) usage = event.usage;
      for (const choice of event.choices || []) {
        const delta = choice.delta || {};
        if (delta.content) {
          const now = performance.now();
          if (first === null) first = now;
          last = now;
          answer += delta.content;
          body.textContent = answer;
          reply.scrollIntoView({ block: "end" });
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    });
    reply.dataset.state = "done";
  } catch (e) {
    reply.dataset.state = e.name === "AbortError" ? "stopped" : "error";
    if (e.name !== "AbortError") {
      const err = document.createElement("div");
      err.className = "error";
      err.textContent = `Error: ${e.message}`;
      reply.insertBefore(err, meta);
    }
  } finally {
    running = null;
    $("send").hidden = false;
    $("stop").hidden = true;
  }
  if (reply.dataset.state === "error") conversation.pop(); // the next try resends this question
  else conversation.push({ role: "assistant", content: answer });
  const tokens = usage ? usage.completion_tokens : null;
  const ttft = first === null ? null : first - started;
  // Decode speed: the tokens after the first, over the time from the first to the last.
  const tps = tokens > 1 && last > first ? (tokens - 1) / ((last - first) / 1000) : null;
  setStats(ttft, tps, tokens);
  const parts = [];
  if (ttft !== null) parts.push(`first token ${Math.round(ttft)} ms`);
  if (tps !== null) parts.push(`${tps.toFixed(1)} tok/s`);
  if (tokens !== null) parts.push(`${tokens} tokens`);
  if (finish) parts.push(`finish: ${finish}`);
  if (reply.dataset.state === "stopped") parts.push("stopped");
  meta.textContent = parts.join(" · ");
  loadModels(); // the model used is now loaded
}

// -- extraction ---------------------------------------------------------------------------

async function extract() {
  const out = $("extract-output");
  const stats = $("extract-stats");
  out.classList.remove("error");
  let schema;
  try {
    schema = JSON.parse($("extract-schema").value);
  } catch (e) {
    out.classList.add("error");
    out.textContent = `The schema is not valid JSON: ${e.message}`;
    return;
  }
  const request = {
    text: $("extract-text").value,
    schema,
    max_tokens: Number($("extract-max-tokens").value),
  };
  const instructions = $("extract-instructions").value.trim();
  if (instructions) request.instructions = instructions;
  if ($("model").value) request.model = $("model").value;
  out.textContent = "…";
  stats.textContent = "";
  $("extract-run").disabled = true;
  try {
    const result = await (await api("/v1/extract", {
      method: "POST", body: JSON.stringify(request),
    })).json();
    out.textContent = JSON.stringify(result.data, null, 2);
    stats.textContent = `${result.model} · ${Math.round(result.latency_ms)} ms · ` +
      `${result.usage.completion_tokens} tokens · fits the schema`;
  } catch (e) {
    out.classList.add("error");
    out.textContent = `Error${e.code ? ` (${e.code})` : ""}: ${e.message}`;
  } finally {
    $("extract-run").disabled = false;
  }
}

// -- wiring -------------------------------------------------------------------------------

function selectTab(name) {
  for (const tab of ["chat", "extract"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
}

function init() {
  $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("api-key").addEventListener("change", () => {
    const key = $("api-key").value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key); else localStorage.removeItem(KEY_STORAGE);
    showBanner("");
    loadModels();
  });
  $("tab-chat").addEventListener("click", () => selectTab("chat"));
  $("tab-extract").addEventListener("click", () => selectTab("extract"));
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = $("temperature").value;
  });
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("chat-input").value.trim();
    if (!text || running) return;
    $("chat-input").value = "";
    send(text);
  });
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  $("stop").addEventListener("click", () => running && running.abort());
  $("image-file").addEventListener("change", () => attach($("image-file").files[0]));
  $("chat-input").addEventListener("paste", (event) => {
    const file = [...(event.clipboardData ? event.clipboardData.files : [])]
      .find((f) => f.type.startsWith("image/"));
    if (file) {
      event.preventDefault();
      attach(file);
    }
  });
  $("clear").addEventListener("click", () => {
    conversation.length = 0;
    detach();
    $("messages").replaceChildren();
    setStats(null, null, null);
  });
  const preset = $("schema-preset");
  for (const name of Object.keys(SCHEMAS)) preset.add(new Option(name, name));
  const showPreset = () => {
    $("extract-schema").value = JSON.stringify(SCHEMAS[preset.value], null, 2);
  };
  preset.addEventListener("change", showPreset);
  showPreset();
  $("extract-form").addEventListener("submit", (event) => {
    event.preventDefault();
    extract();
  });
  loadModels();
}

document.addEventListener("DOMContentLoaded", init);
