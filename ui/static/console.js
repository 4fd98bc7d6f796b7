// Palaver console: progressive enhancement over server-rendered pages. Without JavaScript the
// inbox still works (forms post, links navigate); with it, replies send on Enter, and every page
// follows the workspace's event stream, falling back to polling. Each event is handed to the
// page's own script as a `palaver:event` on the document; each poll as a `palaver:poll`.

const { bind, toast } = await import("./api.js" + new URL(import.meta.url).search);
bind();

const live = document.getElementById("live");

// Times are written by the server in UTC (`<time datetime=…>`); here they read relative to now
// ("5 min ago") with the exact time, in the viewer's own time zone, on hover.
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const day = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const dayOfYear = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short", year: "numeric" });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });

// A time ahead (a snooze's end): "in 20 min", "today 17:00", "tomorrow 09:00", "Mon 09:00".
function ahead(then, now) {
  const seconds = (then - now) / 1000;
  if (seconds < 3600) return `in ${Math.max(1, Math.round(seconds / 60))} min`;
  const midnight = new Date(now);
  midnight.setHours(24, 0, 0, 0);
  if (then < midnight) return `today ${clock.format(then)}`;
  const next = new Date(midnight);
  next.setDate(next.getDate() + 1);
  if (then < next) return `tomorrow ${clock.format(then)}`;
  next.setDate(next.getDate() + 5);
  if (then < next) return `${weekday.format(then)} ${clock.format(then)}`;
  const date = then.getFullYear() === now.getFullYear() ? day.format(then) : dayOfYear.format(then);
  return `${date} ${clock.format(then)}`;
}

function ago(then, now = new Date()) {
  const seconds = (now - then) / 1000;
  if (seconds < -45) return ahead(then, now);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  if (seconds < 6 * 3600) return `${Math.round(seconds / 3600)} h ago`;
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0);
  if (then >= midnight) return `today ${clock.format(then)}`;
  if (then >= midnight - 86400000) return `yesterday ${clock.format(then)}`;
  if (then >= midnight - 6 * 86400000) return `${weekday.format(then)} ${clock.format(then)}`;
  return then.getFullYear() === now.getFullYear() ? day.format(then) : dayOfYear.format(then);
}

function relativeTimes(root = document) {
  const times = root.matches?.("time[datetime]") ? [root] : root.querySelectorAll?.("time[datetime]") || [];
  for (const time of times) {
    const then = new Date(time.getAttribute("datetime"));
    if (Number.isNaN(then.getTime())) continue;
    const text = ago(then);
    if (time.textContent !== text) time.textContent = text;
    const title = exact.format(then);
    if (time.title !== title) time.title = title;
  }
}
relativeTimes();
setInterval(() => relativeTimes(), 30000);
// Parts of pages swapped in live bring their own times.
new MutationObserver((changes) => {
  for (const change of changes) {
    for (const node of change.addedNodes) if (node.nodeType === Node.ELEMENT_NODE) relativeTimes(node);
  }
}).observe(document.body, { childList: true, subtree: true });

// A field the browser refuses (out of range, missing) inside a folded section (an agent's
// Advanced settings) is unfolded first, so the browser can point at it.
document.addEventListener("invalid", (e) => {
  const folded = e.target.closest && e.target.closest("details:not([open])");
  if (folded) folded.open = true;
}, true);

function setState(state) {
  if (!live) return;
  live.dataset.state = state;
  live.textContent = state;
}

// Enter sends, Shift+Enter starts a new line. A chosen file goes with the text as its caption.
const reply = document.getElementById("reply");
if (reply) {
  const text = reply.querySelector("textarea");
  const file = reply.querySelector("input[type=file]");
  const attached = document.getElementById("attached");
  const hasFile = () => file && file.files.length > 0;
  const placeholder = text.placeholder;
  file?.addEventListener("change", () => {
    attached.hidden = !hasFile();
    attached.textContent = hasFile() ? "Attached: " + file.files[0].name + " (the text is its caption)" : "";
    text.placeholder = hasFile() ? "A caption (optional)" : placeholder;
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (text.value.trim() !== "" || hasFile()) reply.requestSubmit();
    }
  });
  reply.addEventListener("submit", (e) => {
    if (text.value.trim() === "" && !hasFile()) {
      e.preventDefault();
      text.focus();
    }
  });
  // Keep the newest message in view.
  const messages = document.getElementById("messages");
  if (messages) window.scrollTo(0, document.body.scrollHeight);
}

// The live region of this page: the conversation list, or one conversation's thread.
// An open conversation's thread is the region even with the list beside it.
const region = document.querySelector("[data-live=conversation]") || document.querySelector("[data-live]");

// Re-reads this page and swaps in the live region, keeping what the person is typing.
// One re-read at a time; an event during one asks for another after it, so nothing that
// happened while the page was being read is missed.
let refreshing = null;
let again = false;
async function refresh() {
  if (!region) return;
  if (refreshing) {
    again = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const id = region.dataset.live === "list" ? "conversations" : "messages";
      // The list beside an open conversation (a wide screen) follows too, keeping the focus.
      if (id === "messages") {
        const list = document.getElementById("conversations");
        const freshList = page.getElementById("conversations");
        if (list && freshList) {
          const focused = list.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
          list.replaceWith(freshList);
          if (focused) freshList.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
        }
      }
      const fresh = page.getElementById(id);
      const current = document.getElementById(id);
      // The first conversation replaces the first steps: the whole page changes (filters, keys).
      if (current?.querySelector(".first-run") && fresh && !fresh.querySelector(".first-run")) {
        location.reload();
        return;
      }
      if (fresh && current) {
        const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
        // What a person opened (a message's sources, its earlier versions) stays open.
        const opened = [...current.querySelectorAll("[id] details[open]")]
          .map((d) => [d.closest("[id]").id, d.className]);
        for (const [id, cls] of opened) {
          const again = fresh.querySelector(`#${CSS.escape(id)} details${cls ? "." + cls.split(" ").join(".") : ""}`);
          if (again) again.open = true;
        }
        const focused = current.contains(document.activeElement) ? document.activeElement.getAttribute("href") : null;
        current.replaceWith(fresh);
        if (focused) fresh.querySelector(`a[href="${CSS.escape(focused)}"]`)?.focus();
        if (id === "messages" && atBottom) window.scrollTo(0, document.body.scrollHeight);
      }
      const head = document.querySelector(".thread-head");
      const freshHead = page.querySelector(".thread-head");
      if (head && freshHead && !head.contains(document.activeElement)) head.replaceWith(freshHead);
      // The open escalations' notes change with the thread: opened, closed, taken over.
      const notes = document.getElementById("escalations");
      const freshNotes = page.getElementById("escalations");
      if (notes && freshNotes) notes.replaceWith(freshNotes);
      // The 24-hour window: its time left follows; when it opens or closes, the reply box and
      // the template form trade places, so the page is read again.
      const window24 = document.getElementById("window");
      const freshWindow = page.getElementById("window");
      if (window24 && freshWindow) {
        if (window24.className !== freshWindow.className) {
          location.reload();
          return;
        }
        window24.replaceWith(freshWindow);
      }
    } finally {
      refreshing = null;
      if (again) {
        again = false;
        refresh();
      }
    }
  })();
  return refreshing;
}

// Which events concern this page.
function concerns(event) {
  if (!region) return false;
  if (region.dataset.live === "list" || document.getElementById("conversations")) return true;
  return event.conversation_id === region.dataset.conversation;
}

function tick() {
  refresh();
  document.dispatchEvent(new CustomEvent("palaver:poll"));
}

let poller = null;
function poll() {
  setState("polling");
  if (!poller) poller = setInterval(tick, 5000);
}

function follow() {
  if (!live) return;
  if (!window.EventSource) return poll();
  // From the newest event when the page was read: what happened since is replayed.
  const after = document.body.dataset.after;
  const query = new URLSearchParams();
  if (after) query.set("last_event_id", after);
  // An open conversation also follows who else has it open, and who is typing in it.
  if (region?.dataset.live === "conversation") query.set("presence", region.dataset.conversation);
  const stream = new EventSource("/api/v1/events" + (query.size ? "?" + query : ""));
  stream.addEventListener("presence", (message) => {
    let change;
    try { change = JSON.parse(message.data); } catch { return; }
    document.dispatchEvent(new CustomEvent("palaver:presence", { detail: change }));
  });
  stream.onopen = () => {
    setState("live");
    if (poller) { clearInterval(poller); poller = null; }
  };
  // Events come named by their type; the page lists the types there are.
  const types = (document.body.dataset.events || "").split(",").filter(Boolean);
  for (const type of types) {
    stream.addEventListener(type, (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      if (concerns(event)) refresh();
      document.dispatchEvent(new CustomEvent("palaver:event", { detail: event }));
    });
  }
  stream.onerror = () => {
    // The browser reconnects by itself; meanwhile the page polls.
    poll();
    if (stream.readyState === EventSource.CLOSED || !navigator.onLine) setState("offline");
  };
  window.addEventListener("offline", () => setState("offline"));
  window.addEventListener("online", () => tick());
}

// Escalation alerts, opt-in per browser: a notification (when the browser allows them) and a
// short tone. The choice is kept in this browser only.
const notify = document.getElementById("notify");
const NOTIFY_KEY = "palaver.notify";
let audio = null;

function notifying() {
  return localStorage.getItem(NOTIFY_KEY) === "on";
}

function showNotify() {
  if (!notify) return;
  const on = notifying();
  notify.hidden = false;
  notify.setAttribute("aria-pressed", String(on));
  notify.textContent = on ? "Notifying" : "Notify me";
}

function tone() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.4);
  } catch {
    // No sound where the browser allows none (no gesture on this page yet).
  }
}

if (notify) {
  showNotify();
  notify.addEventListener("click", async () => {
    if (notifying()) {
      localStorage.removeItem(NOTIFY_KEY);
    } else {
      if (window.Notification && Notification.permission === "default") {
        await Notification.requestPermission();
      }
      localStorage.setItem(NOTIFY_KEY, "on");
      tone();
    }
    showNotify();
  });
  document.addEventListener("palaver:event", (e) => {
    const event = e.detail;
    if (event.type !== "conversation.escalated" || !notifying()) return;
    tone();
    if (window.Notification && Notification.permission === "granted") {
      const escalation = event.data && event.data.escalation;
      const shown = new Notification("Conversation escalated", {
        body: escalation ? escalation.reason.replaceAll("_", " ") : "A customer is waiting for a person.",
        tag: event.conversation_id,
      });
      shown.onclick = () => {
        window.focus();
        location.href = "/inbox/" + event.conversation_id;
      };
    }
  });
}

// Mentions: a colleague's private note that names this person. A browser notification when
// the page is not in front and the browser allows them (asked only when the person clicks);
// otherwise a message in the page, with the way to turn notifications on.
function mentioned(event) {
  const note = (event.data && event.data.note) || {};
  const who = note.author_name || "A colleague";
  const text = (note.text || "").slice(0, 140);
  const href = "/inbox/" + event.conversation_id + (note.id ? "#n-" + note.id : "");
  const allowed = window.Notification && Notification.permission === "granted";
  if (allowed && document.visibilityState !== "visible") {
    const shown = new Notification(`${who} mentioned you`, { body: text, tag: "note-" + (note.id || event.id) });
    shown.onclick = () => {
      window.focus();
      location.href = href;
    };
    return;
  }
  toast("");
  const box = document.getElementById("toast");
  if (!box) return;
  box.classList.add("mentioned");
  const said = document.createElement("span");
  said.className = "said";
  said.textContent = `${who} mentioned you: ${text}`;
  const open = document.createElement("a");
  open.href = href;
  open.textContent = "Open";
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.textContent = "Dismiss";
  dismiss.addEventListener("click", () => { box.hidden = true; box.classList.remove("mentioned"); });
  box.replaceChildren(said, open, dismiss);
  if (window.Notification && Notification.permission === "default") {
    const ask = document.createElement("button");
    ask.type = "button";
    ask.textContent = "Notify me of mentions";
    ask.addEventListener("click", async () => {
      await Notification.requestPermission();
      ask.remove();
    });
    box.append(ask);
  }
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.hidden = true; box.classList.remove("mentioned"); }, 15000);
}
document.addEventListener("palaver:event", (e) => {
  if (e.detail.type === "note.mentioned") mentioned(e.detail);
});

follow();

// A form that only chooses (a channel, a template) goes on as soon as a choice is made with
// the mouse or a tap; from the keyboard, its button does (a select's arrow keys would submit
// at every step otherwise). The form works without this.
for (const form of document.querySelectorAll("form[data-autosubmit]")) {
  let keyed = false;
  form.addEventListener("keydown", () => { keyed = true; });
  form.addEventListener("pointerdown", () => { keyed = false; });
  form.addEventListener("change", (e) => {
    if (!keyed && e.target instanceof HTMLSelectElement && e.target.value) form.requestSubmit();
  });
}
