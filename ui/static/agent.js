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

// Draft from documents: the server drafts the instructions (offline, or with the model when the
// agent answers with one) and runs the agent's eval suite with the saved instructions and with
// the draft; both results are shown side by side. Nothing is saved until the author puts the
// draft in the instructions and saves the form.
const draftStart = document.getElementById("draft-start");
const draftPanel = document.getElementById("draft");

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function totals(t) {
  if (!t) return "";
  const rate = t.pass_rate == null ? "" : ` (${Math.round(t.pass_rate * 100)}%)`;
  return `${t.passed} of ${t.cases} passed${rate}`;
}

const RANK = { passed: 2, skipped: 1, failed: 0, error: 0 };

function verdictCell(v) {
  const td = el("td");
  td.append(el("span", `badge case-${v.status}`, v.status));
  if (v.reason) td.append(el("p", "why", v.reason));
  if (v.reply) {
    const details = el("details");
    details.append(el("summary", "", "Reply"), el("p", "", v.reply));
    td.append(details);
  }
  return td;
}

function showComparison(comparison) {
  const box = document.getElementById("draft-results");
  box.replaceChildren();
  if (!comparison.cases.length) {
    box.append(el("p", "notice", comparison.message || "The agent's eval suite has no cases."));
    return;
  }
  const table = el("table", "draft-compare");
  table.id = "draft-comparison";
  table.append(el("caption", "", `Eval suite ${comparison.suites.join(", ")}: the saved instructions and the draft`));
  const head = el("tr");
  head.append(el("th", "", "Case"));
  for (const [label, side] of [["Saved", comparison.saved], ["Draft", comparison.draft]]) {
    const th = el("th", "", label);
    th.scope = "col";
    th.append(el("span", "totals", totals(side)));
    head.append(th);
  }
  head.firstChild.scope = "col";
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const c of comparison.cases) {
    const row = el("tr");
    const name = el("th", "", c.id);
    name.scope = "row";
    if (c.said) name.append(el("span", "said", c.said));
    const draftCell = verdictCell(c.draft);
    const diff = (RANK[c.draft.status] ?? 0) - (RANK[c.saved.status] ?? 0);
    if (diff > 0) draftCell.classList.add("better");
    if (diff < 0) draftCell.classList.add("worse");
    row.append(name, verdictCell(c.saved), draftCell);
    tbody.append(row);
  }
  table.append(thead, tbody);
  box.append(table);
}

async function draftFromDocuments(mode) {
  const agent = draftStart.dataset.agent;
  const status = document.getElementById("draft-status");
  const error = document.getElementById("draft-error");
  const retry = document.getElementById("draft-retry");
  draftPanel.hidden = false;
  error.hidden = true;
  retry.hidden = true;
  // A new draft replaces the shown one: nothing stale stays beside its outcome.
  document.getElementById("draft-body").hidden = true;
  draftStart.disabled = true;
  draftPanel.setAttribute("aria-busy", "true");
  status.textContent = mode === "offline" || draftStart.dataset.model !== "true"
    ? "Reading the documents and running the eval suite twice…"
    : "The model is drafting; then the eval suite runs twice…";
  try {
    const body = mode ? { mode } : {};
    const draft = await api("POST", `/api/v1/agents/${encodeURIComponent(agent)}/instructions/draft`, body);
    document.getElementById("draft-body").hidden = false;
    document.getElementById("draft-text").value = draft.text;
    const calls = draft.model_calls;
    const used = calls.limit == null ? `${calls.used} model calls this month` : `${calls.used} of ${calls.limit} model calls this month`;
    document.getElementById("draft-made-by").textContent =
      draft.made_by === "model" ? `(written by ${draft.model}; ${used})` : "(assembled from the documents, without a model)";
    showComparison(draft.comparison);
    status.textContent = "Draft ready. Compare the results, edit the draft if needed, then use it.";
    // The draft is read from its first line: the caret and the scroll start at the top.
    const text = document.getElementById("draft-text");
    text.focus();
    text.setSelectionRange(0, 0);
    text.scrollTop = 0;
  } catch (err) {
    error.textContent = describe(err);
    error.hidden = false;
    status.textContent = "";
    // The model failed or the month's calls are used up: the documents alone still draft.
    retry.hidden = !(err.status === 429 || err.status === 503);
  } finally {
    draftStart.disabled = false;
    draftPanel.removeAttribute("aria-busy");
  }
}

if (draftStart && draftPanel) {
  draftStart.addEventListener("click", () => draftFromDocuments());
  document.getElementById("draft-offline").addEventListener("click", () => draftFromDocuments("offline"));
  document.getElementById("draft-use").addEventListener("click", () => {
    const prompt = document.getElementById("prompt");
    prompt.value = document.getElementById("draft-text").value;
    prompt.dispatchEvent(new Event("input", { bubbles: true }));
    prompt.focus();
    document.getElementById("draft-status").textContent = "The draft is in the instructions: save to keep it.";
  });
  document.getElementById("draft-compare").addEventListener("click", async (e) => {
    const button = e.currentTarget;
    const status = document.getElementById("draft-status");
    const error = document.getElementById("draft-error");
    button.disabled = true;
    error.hidden = true;
    status.textContent = "Running the eval suite with the saved instructions and with this text…";
    try {
      const comparison = await api("POST", `/api/v1/agents/${encodeURIComponent(draftStart.dataset.agent)}/instructions/compare`, {
        instructions: document.getElementById("draft-text").value,
      });
      showComparison(comparison);
      status.textContent = "Results updated.";
    } catch (err) {
      error.textContent = describe(err);
      error.hidden = false;
      status.textContent = "";
    } finally {
      button.disabled = false;
    }
  });
}
