// Plain JavaScript for the pages; no framework, no CDN.
"use strict";

// The page's messages in its language (base.html puts them in #messages), with %(name)s filled in.
const MESSAGES = JSON.parse(document.getElementById("messages")?.textContent || "{}");
function T(key, values = {}) {
  return (MESSAGES[key] || key).replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}
const LANG = document.documentElement.lang || "en";
// The pages' one time format: m:ss.s (h:mm:ss.s from an hour on), as query_app.web.i18n.clock.
function clock(seconds) {
  const tenths = Math.round(Math.max(seconds, 0) * 10);
  const h = Math.floor(tenths / 36000), m = Math.floor((tenths % 36000) / 600), rest = tenths % 600;
  const s = `${String(Math.floor(rest / 10)).padStart(2, "0")}.${rest % 10}`;
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
function isTyping(target) {
  return target.closest("input, textarea, select, [contenteditable=true]") !== null;
}

function playAt(player, src, seconds, until) {
  // Seek once the metadata is known; the server answers range requests, so seeking is cheap.
  // With `until`, playing stops at the end of the moment.
  player.ontimeupdate = until ? () => { if (player.currentTime >= until) { player.pause(); player.ontimeupdate = null; } } : null;
  const seek = () => { player.currentTime = seconds; player.play().catch(() => {}); };
  if (player.getAttribute("src") !== src) {
    player.setAttribute("src", src);
    player.addEventListener("loadedmetadata", seek, { once: true });
    player.load();
  } else if (player.readyState >= 1) {
    seek();
  } else {
    player.addEventListener("loadedmetadata", seek, { once: true });
  }
}

// ---- search page: a click on a card (or Enter) plays the video from that frame
const cards = Array.from(document.querySelectorAll("[data-testid=result-card]"));
let openedFrom = null;
function closePlayer() {
  const wrap = document.getElementById("player-wrap");
  if (!wrap || wrap.hidden) return false;
  document.getElementById("player").pause();
  wrap.hidden = true;
  if (openedFrom) openedFrom.focus();
  return true;
}
cards.forEach((card) => {
  const open = () => {
    const wrap = document.getElementById("player-wrap");
    const player = document.getElementById("player");
    wrap.hidden = false;
    openedFrom = card;
    document.getElementById("now-playing").textContent = card.dataset.title;
    playAt(player, card.dataset.stream, parseFloat(card.dataset.timestamp), parseFloat(card.dataset.end));
    wrap.scrollIntoView({ behavior: "smooth", block: "nearest" });
  };
  card.addEventListener("click", (e) => { if (!e.target.closest("a, input, label, summary, details")) open(); });
  card.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === card) open(); });
});
document.getElementById("close-player")?.addEventListener("click", closePlayer);

// ---- search form: empty filters stay out of the address (it is what gets shared)
document.getElementById("search-form")?.addEventListener("submit", (e) => {
  e.currentTarget.querySelectorAll("input:not([type=checkbox]), select").forEach((field) => {
    if (field.name && field.value === "") field.disabled = true;
  });
});
window.addEventListener("pageshow", () => {  // back to the page from the browser's cache: usable again
  document.querySelectorAll("#search-form [disabled]").forEach((field) => { field.disabled = false; });
});

// ---- keyboard: "/" to the search box, j/k or the arrow keys between results, Esc closes the player
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "Escape" && closePlayer()) { e.preventDefault(); return; }
  if (isTyping(e.target)) return;
  const search = document.getElementById("q");
  if (e.key === "/" && search) { e.preventDefault(); search.focus(); search.select(); return; }
  const step = { j: 1, ArrowDown: 1, ArrowRight: 1, k: -1, ArrowUp: -1, ArrowLeft: -1 }[e.key];
  if (!step || !cards.length || (e.key.startsWith("Arrow") && !e.target.closest("[data-testid=result-card]"))) return;
  const at = cards.indexOf(e.target.closest("[data-testid=result-card]"));
  const next = cards[at < 0 ? 0 : Math.min(Math.max(at + step, 0), cards.length - 1)];
  e.preventDefault();
  next.focus();
  next.scrollIntoView({ block: "nearest" });
});

// ---- search page: an image dropped (or chosen) is searched for at once
const dropZone = document.getElementById("drop-zone");
if (dropZone) {
  const imageInput = document.getElementById("image-file");
  const submit = () => document.getElementById("image-form").submit();
  imageInput.addEventListener("change", () => { if (imageInput.files[0]) submit(); });
  dropZone.addEventListener("dragover", (e) => { e.preventDefault(); dropZone.classList.add("over"); });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
  dropZone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropZone.classList.remove("over");
    if (e.dataTransfer.files.length) { imageInput.files = e.dataTransfer.files; submit(); }
  });
}

// ---- describe page
const describePlayer = document.getElementById("describe-player");
if (describePlayer) {
  const select = document.getElementById("video-select");
  const fileInput = document.getElementById("video-file");
  const start = document.getElementById("start"), end = document.getElementById("end");
  const show = () => {
    document.getElementById("start-out").textContent = clock(parseFloat(start.value));
    document.getElementById("end-out").textContent = clock(parseFloat(end.value));
  };
  describePlayer.addEventListener("loadedmetadata", () => {
    for (const r of [start, end]) r.max = describePlayer.duration.toFixed(2);
    start.value = 0; end.value = Math.min(describePlayer.duration, 10).toFixed(2); show();
  });
  for (const r of [start, end]) r.addEventListener("input", () => {
    if (parseFloat(start.value) >= parseFloat(end.value)) (r === start ? end : start).value = r.value;
    describePlayer.currentTime = parseFloat(r.value); show();
  });
  document.querySelectorAll("[data-set]").forEach((b) => b.addEventListener("click", () => {
    document.getElementById(b.dataset.set).value = describePlayer.currentTime.toFixed(2); show();
  }));
  select.addEventListener("change", () => {
    fileInput.value = "";
    const option = select.selectedOptions[0];
    if (option && option.dataset.stream) describePlayer.src = option.dataset.stream;
  });
  fileInput.addEventListener("change", () => {
    select.value = "";
    if (fileInput.files[0]) describePlayer.src = URL.createObjectURL(fileInput.files[0]);
  });
  document.getElementById("describe-button").addEventListener("click", async () => {
    const out = document.getElementById("description");
    const language = document.getElementById("language").value;
    out.textContent = T("describing");
    let response;
    if (fileInput.files[0]) {
      const form = new FormData();
      form.append("file", fileInput.files[0]);
      form.append("start", start.value); form.append("end", end.value); form.append("language", language);
      response = await fetch("/describe/upload", { method: "POST", body: form });
    } else if (select.value) {
      response = await fetch("/describe", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ video_id: select.value, start: parseFloat(start.value), end: parseFloat(end.value), language }),
      });
    } else { out.textContent = T("choose_video"); return; }
    const body = await response.json();
    if (!response.ok) { out.textContent = T("error", { detail: body.detail || body.error || response.status }); return; }
    const frames = T("frames_at", { times: body.frame_times.map(clock).join(", ") });
    out.textContent = `${body.text}\n\n${clock(body.start)}–${clock(body.end)} · ${frames} · ${body.models.captioner}`;
  });
}

// ---- library page: upload into the watched folder, then follow it until it can be searched
const uploadForm = document.getElementById("upload-form");
if (uploadForm) {
  uploadForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = document.getElementById("upload-status");
    status.textContent = T("uploading");
    const response = await fetch("/upload", { method: "POST", body: new FormData(uploadForm) });
    const body = await response.json();
    status.textContent = response.ok ? T("saved", { name: body.saved_as }) : T("error", { detail: body.detail || body.error });
    if (response.ok) refreshProgress();
  });
}
const progressBox = document.getElementById("indexing-status");
let progressTimer = null, sawIndexing = false;
async function refreshProgress() {
  if (!progressBox) return;
  clearTimeout(progressTimer);
  let s;
  try {
    s = await (await fetch(progressBox.dataset.url)).json();
  } catch (err) {
    progressTimer = setTimeout(refreshProgress, 5000);
    return;
  }
  const warning = document.getElementById("daemon-warning");
  const problem = !s.configured ? T("no_dagster")
    : s.reachable === false ? T("dagster_unreachable", { url: s.dagster_url })
    : s.daemon_running === false ? T("no_daemon") : "";
  warning.textContent = problem;
  warning.hidden = !problem;
  // Built with textContent: file names and messages are user data, never parsed as HTML.
  const items = (s.videos || []).map((v) => {
    const item = document.createElement("li");
    item.dataset.state = v.state;
    item.setAttribute("data-testid", "progress-item");
    const name = document.createElement("strong");
    name.textContent = v.name;
    const label = v.state === "running" && v.stages ? T("status_running", { k: v.stage, n: v.stages })
      : T("status_" + v.state);
    const state = document.createElement("span");
    state.className = "state state-" + v.state;
    state.textContent = label + (v.step ? ` (${v.step})` : "");
    item.append(name, " · ", state);
    if (v.error) item.append(`: ${v.failed_stage ? v.failed_stage + ": " : ""}${v.error}`);
    if (v.updated) item.append(` · ${new Date(v.updated * 1000).toLocaleTimeString(LANG)}`);
    if (v.run_url) {
      const link = document.createElement("a");
      link.href = v.run_url; link.textContent = T("run");
      item.append(" · ", link);
    }
    return item;
  });
  document.getElementById("progress-list").replaceChildren(...items);
  const going = (s.videos || []).some((v) => !["indexed", "failed", "canceled"].includes(v.state));
  sawIndexing = sawIndexing || going;
  const empty = document.getElementById("progress-empty");
  empty.textContent = items.length ? (!going && sawIndexing ? T("reload_to_see") : "") : T("nothing_indexing");
  progressTimer = setTimeout(refreshProgress, going ? 2000 : 10000);
}
refreshProgress();

// ---- search page: selected results go to a reel or a timeline, in result order
const editForm = document.getElementById("edit-form");
if (editForm) {
  const boxes = () => Array.from(document.querySelectorAll("[data-testid=select-result]"));
  const count = () => {
    const n = boxes().filter((b) => b.checked).length;
    document.getElementById("picked-count").textContent = T("selected", { n });
  };
  boxes().forEach((b) => b.addEventListener("change", count));
  editForm.addEventListener("submit", (e) => {
    editForm.querySelectorAll("input[name=item]").forEach((i) => i.remove());
    const picked = boxes().filter((b) => b.checked);
    if (!picked.length) { e.preventDefault(); alert(T("select_first")); return; }
    picked.forEach((b) => {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = "item"; input.value = b.value;
      editForm.appendChild(input);
    });
  });
}

// ---- watch page: play the video from the moment in the link
const watchPlayer = document.getElementById("watch-player");
if (watchPlayer) {
  const end = watchPlayer.dataset.end ? parseFloat(watchPlayer.dataset.end) : undefined;
  playAt(watchPlayer, watchPlayer.dataset.stream, parseFloat(watchPlayer.dataset.start), end);
}
