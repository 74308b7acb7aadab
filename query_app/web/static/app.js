// Plain JavaScript for the three pages; no framework, no CDN.
"use strict";

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

// ---- search page: a click on a card plays the video from that frame
document.querySelectorAll("[data-testid=result-card]").forEach((card) => {
  const open = () => {
    const wrap = document.getElementById("player-wrap");
    const player = document.getElementById("player");
    wrap.hidden = false;
    document.getElementById("now-playing").textContent = card.dataset.title;
    playAt(player, card.dataset.stream, parseFloat(card.dataset.timestamp), parseFloat(card.dataset.end));
    wrap.scrollIntoView({ behavior: "smooth", block: "nearest" });
  };
  card.addEventListener("click", (e) => { if (!e.target.closest("a, input, label")) open(); });
  card.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
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
    document.getElementById("start-out").textContent = parseFloat(start.value).toFixed(2);
    document.getElementById("end-out").textContent = parseFloat(end.value).toFixed(2);
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
    out.textContent = "Describing…";
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
    } else { out.textContent = "Choose a video first."; return; }
    const body = await response.json();
    if (!response.ok) { out.textContent = "Error: " + (body.detail || body.error || response.status); return; }
    out.textContent = `${body.text}\n\n${body.start.toFixed(2)}–${body.end.toFixed(2)} s · frames at ${body.frame_times.join(", ")} s · ${body.models.captioner}`;
  });
}

// ---- library page: upload into the watched folder, indexing status from Dagster
const uploadForm = document.getElementById("upload-form");
if (uploadForm) {
  uploadForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = document.getElementById("upload-status");
    status.textContent = "Uploading…";
    const response = await fetch("/upload", { method: "POST", body: new FormData(uploadForm) });
    const body = await response.json();
    status.textContent = response.ok ? `Saved: ${body.status} (id ${body.video_id})` : `Error: ${body.detail || body.error}`;
  });
}
const statusBox = document.getElementById("indexing-status");
if (statusBox) {
  fetch(statusBox.dataset.url).then((r) => r.json()).then((s) => {
    // Built with textContent: file names are user data and must never be parsed as HTML.
    const heading = document.createElement("h3");
    heading.textContent = "Indexing status (Dagster)";
    const list = document.createElement("ul");
    for (const v of s.videos || []) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = v.run_url; link.textContent = "run";
      item.append(`${v.name}: ${v.status} (`, link, ")");
      list.append(item);
    }
    const note = document.createElement("p");
    note.textContent = s.error || (list.children.length ? "" : "No indexing runs yet.");
    if (s.error) note.className = "error";
    statusBox.replaceChildren(heading, note, list);
  });
}

// ---- search page: selected results go to a reel or a timeline, in result order
const editForm = document.getElementById("edit-form");
if (editForm) {
  const boxes = () => Array.from(document.querySelectorAll("[data-testid=select-result]"));
  const count = () => {
    const n = boxes().filter((b) => b.checked).length;
    document.getElementById("picked-count").textContent = `${n} selected`;
  };
  boxes().forEach((b) => b.addEventListener("change", count));
  editForm.addEventListener("submit", (e) => {
    editForm.querySelectorAll("input[name=item]").forEach((i) => i.remove());
    const picked = boxes().filter((b) => b.checked);
    if (!picked.length) { e.preventDefault(); alert("Select one or more results first."); return; }
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
