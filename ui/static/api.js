// Calls of Palaver's JSON API from the console, with the session cookie and its CSRF token, and
// the forms and buttons that make them: `<form data-api="/api/v1/..." data-method="POST">` sends
// its fields as JSON (names with dots nest: `credentials.api_key`), shows the API's errors next
// to the form, and does what `data-then` says once it succeeded.

export function csrf() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.fields = error.fields || [];
  }
}

/// One API call: JSON in (or a FormData), JSON out; throws ApiError for any non-2xx answer.
export async function api(method, path, body) {
  const headers = { "X-CSRF-Token": csrf(), Accept: "application/json" };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401) {
    location.href = "/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/// What went wrong, for a person: the message, and each field with its reason.
export function describe(error) {
  if (!(error instanceof ApiError)) return "The server could not be reached; check the connection and try again.";
  if (error.fields.length) return error.fields.map((f) => `${f.field}: ${f.message}`).join("; ");
  return error.message;
}

function place(target, path, value) {
  const keys = path.split(".");
  let at = target;
  for (const key of keys.slice(0, -1)) {
    if (typeof at[key] !== "object" || at[key] === null) at[key] = {};
    at = at[key];
  }
  at[keys[keys.length - 1]] = value;
}

function lookup(target, path) {
  return path.split(".").reduce((at, key) => (at == null ? undefined : at[key]), target);
}

/// A form's fields as the API's JSON. `data-type` says how a field reads: `bool` (a checkbox),
/// `number`, `list` (comma-separated), `nullable` (empty is null), `nullable-number` (empty is
/// null, else a number), `checked-list` (the values of
/// the checked boxes of that name); other fields are text, left out when empty and optional.
/** Where a passage comes from, in words: its document's title, then the parts of its heading
 * path that do not repeat the title ("FAQ > Delivery" under "FAQ" gives "FAQ › Delivery"). */
export function sourceLabel(title, heading) {
  const parts = (heading || "").split(" > ").map((p) => p.trim()).filter(Boolean);
  const same = (a, b) => a.localeCompare(b, undefined, { sensitivity: "accent" }) === 0;
  while (title && parts.length && same(parts[0], title)) parts.shift();
  return [title, ...parts].filter(Boolean).join(" › ");
}

export function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.type === "submit" || el.type === "button" || el.type === "file") continue;
    const type = el.dataset.type || "text";
    if (type === "checked-list") {
      const list = lookup(body, el.name) || [];
      if (el.checked) list.push(el.value);
      place(body, el.name, list);
      continue;
    }
    let value;
    if (type === "bool") value = el.checked;
    else if (type === "number") {
      if (el.value === "") continue;
      value = Number(el.value);
    } else if (type === "list") value = el.value.split(",").map((s) => s.trim()).filter(Boolean);
    else if (type === "nullable") value = el.value.trim() === "" ? null : el.value.trim();
    else if (type === "nullable-number") value = el.value.trim() === "" ? null : Number(el.value);
    else {
      value = el.value;
      if (value === "" && el.hasAttribute("data-optional")) continue;
    }
    place(body, el.name, value);
  }
  return body;
}

function showError(form, error) {
  const box = form && form.querySelector(".form-error");
  for (const el of form ? form.querySelectorAll("[aria-invalid]") : []) el.removeAttribute("aria-invalid");
  if (form && error instanceof ApiError) {
    for (const f of error.fields) {
      const el = form.elements.namedItem(f.field);
      if (el && el.setAttribute) el.setAttribute("aria-invalid", "true");
      // A field folded away (an agent's advanced settings) is shown, so it can be mended.
      const folded = el && el.closest && el.closest("details:not([open])");
      if (folded) folded.open = true;
    }
  }
  if (box) {
    box.textContent = describe(error);
    box.hidden = false;
    box.focus?.();
  } else {
    toast(describe(error));
  }
}

/// A message for a moment at the bottom of the page (read out by screen readers).
export function toast(text) {
  let box = document.getElementById("toast");
  if (!box) {
    box = document.createElement("p");
    box.id = "toast";
    box.className = "toast";
    box.setAttribute("role", "alert");
    document.body.append(box);
  }
  box.textContent = text;
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => (box.hidden = true), 6000);
}

/// Whether this page is on its way to another (scripts then leave it alone).
export function leaving() {
  return document.documentElement.dataset.leaving === "true";
}

function go(url) {
  document.documentElement.dataset.leaving = "true";
  location.href = url;
}

async function then(how, data, source) {
  const [what, arg] = (how || "reload").split(/:(.*)/s);
  if (what === "go") go(arg);
  else if (what === "agent") go("/agents/" + encodeURIComponent(data.name));
  else if (what === "run") go("/evals/" + encodeURIComponent(data.id));
  else if (what === "saved") {
    const note = source.querySelector('[data-role="saved"]');
    if (note) {
      note.hidden = false;
      setTimeout(() => (note.hidden = true), 3000);
    } else toast("Saved.");
  } else if (what === "secret") {
    const box = source.querySelector('[data-role="secret"]');
    const input = box.querySelector("input");
    input.value = lookup(data, arg) || "";
    box.hidden = false;
    input.focus();
    input.select();
  } else if (what === "event") {
    source.dispatchEvent(new CustomEvent("palaver:done", { detail: data, bubbles: true }));
  } else location.reload();
}

async function run(source, method, path, body) {
  const button = source.tagName === "FORM" ? source.querySelector('button[type="submit"]') : source;
  if (button) button.disabled = true;
  source.setAttribute("aria-busy", "true");
  try {
    const data = await api(method, path, body);
    const box = source.querySelector?.(".form-error");
    if (box) box.hidden = true;
    await then(source.dataset.then, data, source);
  } catch (e) {
    showError(source.tagName === "FORM" ? source : null, e);
  } finally {
    if (button) button.disabled = false;
    source.removeAttribute("aria-busy");
  }
}

export function bind(root = document) {
  for (const form of root.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      run(form, form.dataset.method || "POST", form.dataset.api, formBody(form));
    });
    for (const el of form.querySelectorAll("[data-submit-on-change]")) {
      el.addEventListener("change", () => form.requestSubmit());
    }
  }
  for (const button of root.querySelectorAll("button[data-api]")) {
    button.addEventListener("click", () => {
      if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
      run(button, button.dataset.method || "POST", button.dataset.api, undefined);
    });
  }
  for (const button of root.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = document.getElementById(button.dataset.copy);
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        document.execCommand("copy");
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = label), 1500);
    });
  }
  // Tabs: one panel shown; arrow keys move between tabs.
  for (const list of root.querySelectorAll('[role="tablist"]')) {
    const tabs = [...list.querySelectorAll('[role="tab"]')];
    const choose = (tab) => {
      for (const t of tabs) {
        const chosen = t === tab;
        t.setAttribute("aria-selected", String(chosen));
        t.tabIndex = chosen ? 0 : -1;
        document.getElementById(t.getAttribute("aria-controls")).hidden = !chosen;
      }
    };
    tabs.forEach((tab, i) => {
      tab.tabIndex = tab.getAttribute("aria-selected") === "true" ? 0 : -1;
      tab.addEventListener("click", () => choose(tab));
      tab.addEventListener("keydown", (e) => {
        const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        const next = tabs[(i + step + tabs.length) % tabs.length];
        next.focus();
        choose(next);
      });
    });
  }
}
