// An agent's page: documents uploaded with progress (several at once), deleted, and the
// knowledge searched, as the customer's question would find it.

const { api, describe, csrf, sourceLabel } = await import("./api.js" + new URL(import.meta.url).search);

const upload = document.getElementById("upload");
const list = document.getElementById("uploads");

function uploadOne(agent, file) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-label", "Upload of " + file.name);
  const status = document.createElement("span");
  status.className = "status";
  item.append(name, bar, status);
  list.append(item);
  const max = Number(upload.dataset.max || 0);
  if (max && file.size > max) {
    bar.remove();
    status.textContent = "too large: over the upload limit";
    item.classList.add("failed");
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", `/api/v1/agents/${encodeURIComponent(agent)}/documents`);
    request.setRequestHeader("X-CSRF-Token", csrf());
    request.setRequestHeader("Accept", "application/json");
    request.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    };
    request.upload.onload = () => (status.textContent = "reading and indexing…");
    request.onload = () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      bar.value = 100;
      if (request.status >= 200 && request.status < 300) {
        const outcome = body && body.outcome;
        status.textContent = outcome === "unchanged" ? "already there, unchanged" : "ready";
        item.classList.add("done");
        resolve(true);
      } else {
        status.textContent = (body && body.error && body.error.message) || `failed (${request.status})`;
        item.classList.add("failed");
        resolve(false);
      }
    };
    request.onerror = () => {
      status.textContent = "failed: the server could not be reached";
      item.classList.add("failed");
      resolve(false);
    };
    const form = new FormData();
    form.append("file", file, file.name);
    request.send(form);
  });
}

if (upload) {
  upload.addEventListener("submit", async (e) => {
    e.preventDefault();
    const files = [...upload.querySelector('input[type="file"]').files];
    if (!files.length) return;
    const button = upload.querySelector('button[type="submit"]');
    button.disabled = true;
    // One at a time: each is read, split and embedded on the server.
    let any = false;
    for (const file of files) any = (await uploadOne(upload.dataset.agent, file)) || any;
    button.disabled = false;
    upload.reset();
    if (any) refreshDocuments();
  });
}

async function refreshDocuments() {
  const response = await fetch(location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.getElementById("documents");
  const current = document.getElementById("documents");
  if (fresh && current) {
    current.replaceWith(fresh);
    const { bind } = await import("./api.js" + new URL(import.meta.url).search);
    bind(fresh);
  }
}

const search = document.getElementById("search");
const passages = document.getElementById("passages");
if (search) {
  search.addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = search.querySelector("input").value.trim();
    if (!q) return;
    passages.replaceChildren();
    try {
      const found = await api("GET", `/api/v1/agents/${encodeURIComponent(search.dataset.agent)}/search?q=${encodeURIComponent(q)}`);
      const results = Array.isArray(found) ? found : found.results || [];
      if (!results.length) {
        const li = document.createElement("li");
        li.className = "empty";
        li.textContent = "Nothing in the knowledge matches this question.";
        passages.append(li);
      }
      for (const r of results) {
        const li = document.createElement("li");
        li.className = "passage";
        const head = document.createElement("p");
        head.className = "meta";
        const where = sourceLabel(r.title || r.source, r.heading);
        head.textContent = `${where} · score ${Number(r.score ?? r.similarity ?? 0).toFixed(3)}`;
        const text = document.createElement("p");
        text.className = "text";
        text.textContent = r.text;
        li.append(head, text);
        passages.append(li);
      }
    } catch (err) {
      const li = document.createElement("li");
      li.className = "error";
      li.textContent = describe(err);
      passages.append(li);
    }
  });
}

document.addEventListener("palaver:event", (e) => {
  if (e.detail.type === "document.ingested") refreshDocuments();
});
