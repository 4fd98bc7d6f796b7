// The inbox from the keyboard, and replies kept while a person moves between conversations;
// who else has the open conversation in front of them, or is typing in it.
// Keys (never while typing in a field): j / k the next / previous conversation of the list,
// / the search, r the reply, e resolve, ? the list of keys. A reply being written is kept in
// this browser per conversation until it is sent.

const KEYS = [
  ["j", "Next conversation in the list"],
  ["k", "Previous conversation in the list"],
  ["Enter", "Open the conversation in focus"],
  ["/", "Search conversations"],
  ["r", "Write a reply"],
  ["e", "Resolve the open conversation"],
  ["?", "Show these keys"],
  ["Esc", "Leave a field, or close this list"],
];

function typing(target) {
  return target instanceof Element && !!target.closest("input, textarea, select, [contenteditable]:not([contenteditable=false])");
}

function conversations() {
  // The list may be folded away on a phone beside an open conversation.
  return [...document.querySelectorAll("#conversations .conversation a")].filter((a) => a.offsetParent !== null);
}

function move(by) {
  const links = conversations();
  if (!links.length) return;
  let at = links.indexOf(document.activeElement);
  if (at === -1) {
    const open = links.findIndex((a) => a.getAttribute("aria-current") === "page");
    at = open === -1 ? (by > 0 ? -1 : links.length) : open;
  }
  const next = links[Math.min(links.length - 1, Math.max(0, at + by))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
}

let help = null;
function showKeys() {
  if (!help) {
    help = document.createElement("dialog");
    help.id = "keys";
    help.className = "keys";
    help.setAttribute("aria-labelledby", "keys-title");
    const title = document.createElement("h2");
    title.id = "keys-title";
    title.textContent = "Keyboard shortcuts";
    const list = document.createElement("dl");
    for (const [key, what] of KEYS) {
      const dt = document.createElement("dt");
      const kbd = document.createElement("kbd");
      kbd.textContent = key;
      dt.append(kbd);
      const dd = document.createElement("dd");
      dd.textContent = what;
      list.append(dt, dd);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
    close.addEventListener("click", () => help.close());
    help.append(title, list, close);
    document.body.append(help);
  }
  if (!help.open) help.showModal();
}

document.getElementById("show-keys")?.addEventListener("click", showKeys);
const hint = document.getElementById("keys-hint");
if (hint) hint.hidden = false;

document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.isComposing) return;
  if (typing(e.target)) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (help?.open) return;
  const act = {
    j: () => move(1),
    k: () => move(-1),
    "/": () => document.getElementById("q")?.focus(),
    r: () => document.getElementById("text")?.focus(),
    e: () => document.querySelector(".thread-head form[action$='/resolve'] button")?.click(),
    "?": showKeys,
  }[e.key];
  if (act) {
    e.preventDefault();
    act();
  }
});

// Drafts: what is typed in a conversation's reply box, kept until sent.
const reply = document.getElementById("reply");
const thread = document.querySelector("[data-live=conversation]");
if (reply && thread) {
  const key = "palaver.draft." + thread.dataset.conversation;
  const text = reply.querySelector("textarea");
  const kept = localStorage.getItem(key);
  if (kept && !text.value) text.value = kept;
  text.addEventListener("input", () => {
    if (text.value.trim()) localStorage.setItem(key, text.value);
    else localStorage.removeItem(key);
  });
  // Sent: the draft is done with (an empty reply, refused, had none to keep).
  reply.addEventListener("submit", () => localStorage.removeItem(key));
}

// Snoozing: the presets ("tomorrow 9:00") and a chosen time are read in this browser's zone.
// Filled as a form leaves: the conversation's header (and its forms) is swapped in live.
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
document.addEventListener("submit", (e) => {
  for (const field of e.target.querySelectorAll("input[data-zone]")) field.value = zone;
}, true);

// A list offered at the caret of a text box as a word is typed after a sign: canned responses
// after "/" in the reply, colleagues after "@" in a private note. The options (the page's,
// rendered for this conversation) that start with what follows the sign are shown; arrow keys
// choose, Enter or Tab inserts, Escape closes, a tap or a click inserts too.
function picker(list, box, { sign, matches, counted, nothing }) {
  const options = [...list.querySelectorAll("[role=option]")];
  const none = list.querySelector(".none");
  const status = document.getElementById(list.id + "-status");
  const word = new RegExp("(^|\\s)[" + sign + "]([\\p{L}\\p{N}._-]*)$", "u");
  let shown = [];
  let active = -1;
  let typed = null;

  // The sign and word just before the caret (at the start or after a space), if any.
  function signWord() {
    const before = box.value.slice(0, box.selectionStart);
    const match = word.exec(before);
    return match ? { start: before.length - match[2].length - 1, query: match[2].toLowerCase() } : null;
  }

  function choose(i) {
    active = i;
    shown.forEach((o, n) => o.setAttribute("aria-selected", String(n === i)));
    if (i >= 0 && shown[i]) {
      box.setAttribute("aria-activedescendant", shown[i].id);
      shown[i].scrollIntoView({ block: "nearest" });
    } else {
      box.removeAttribute("aria-activedescendant");
    }
  }

  function close() {
    list.hidden = true;
    box.setAttribute("aria-expanded", "false");
    typed = null;
    choose(-1);
  }

  function open() {
    typed = signWord();
    if (!typed) return close();
    shown = options.filter((o) => {
      const hit = matches(o, typed.query);
      o.hidden = !hit;
      return hit;
    });
    none.hidden = shown.length > 0;
    list.hidden = false;
    box.setAttribute("aria-expanded", "true");
    choose(shown.length ? 0 : -1);
    if (status) status.textContent = shown.length ? `${counted(shown.length)}; arrow keys choose, Enter inserts` : nothing;
  }

  function insert(option) {
    const at = typed || signWord();
    if (!at) return close();
    const end = box.selectionStart;
    box.value = box.value.slice(0, at.start) + option.dataset.text + box.value.slice(end);
    const caret = at.start + option.dataset.text.length;
    box.setSelectionRange(caret, caret);
    close();
    box.focus();
    // A draft keeps what was inserted.
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  box.addEventListener("input", () => (signWord() ? open() : close()));
  box.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== box) close(); }, 150));
  // Before the form's own keys (Enter sends a reply): while the list is open, keys choose in it.
  box.form.addEventListener("keydown", (e) => {
    if (e.target !== box || list.hidden) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!shown.length) return;
      e.preventDefault();
      e.stopPropagation();
      const step = e.key === "ArrowDown" ? 1 : -1;
      choose((active + step + shown.length) % shown.length);
    } else if ((e.key === "Enter" || e.key === "Tab") && !e.shiftKey && active >= 0) {
      e.preventDefault();
      e.stopPropagation();
      insert(shown[active]);
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  }, true);
  // The press keeps the focus in the text box.
  for (const option of options) {
    option.addEventListener("mousedown", (e) => e.preventDefault());
    option.addEventListener("click", () => insert(option));
  }
}

const canned = document.getElementById("canned");
const box = document.getElementById("text");
if (canned && box) {
  picker(canned, box, {
    sign: "/",
    // Its short code, or words of its text once two letters are typed.
    matches: (o, q) => o.dataset.code.startsWith(q) || (q.length > 1 && o.dataset.text.toLowerCase().includes(q)),
    counted: (n) => `${n} canned responses`,
    nothing: "No canned response starts with that",
  });
}

const mentions = document.getElementById("mentions");
const note = document.getElementById("note-text");
if (mentions && note) {
  picker(mentions, note, {
    sign: "@",
    // The word that mentions them, or the start of one of their names.
    matches: (o, q) => o.dataset.code.startsWith(q) || o.dataset.name.split(/\s+/).some((w) => w.startsWith(q)),
    counted: (n) => (n === 1 ? "1 colleague" : `${n} colleagues`),
    nothing: "Nobody's name starts with that",
  });
}

// Presence: a heartbeat while this conversation is open and the page is in front, a signal
// (at most every 3 s) while typing a reply or a note, and "left" when the page goes. What the
// others do comes with each answer and through the event stream; nobody is shown themselves.
const presence = document.getElementById("presence");
if (thread && presence) {
  const { api, csrf } = await import("./api.js" + new URL(import.meta.url).search);
  const path = `/api/v1/conversations/${thread.dataset.conversation}/presence`;
  const names = (list) => list.length === 1 ? list[0]
    : list.length === 2 ? `${list[0]} and ${list[1]}`
    : `${list[0]}, ${list[1]} and ${list.length - 2} more`;
  const show = (people) => {
    const typing = people.filter((p) => p.typing).map((p) => p.name);
    const viewing = people.filter((p) => !p.typing).map((p) => p.name);
    const parts = [];
    if (typing.length) parts.push(`${names(typing)} ${typing.length === 1 ? "is" : "are"} typing…`);
    if (viewing.length) parts.push(`${names(viewing)} ${viewing.length === 1 ? "is" : "are"} viewing`);
    presence.textContent = parts.join(" · ");
    presence.hidden = parts.length === 0;
  };
  const beat = async (state) => {
    try {
      show((await api("POST", path, { state })).people);
    } catch {
      // Presence is a courtesy: the conversation works without it.
    }
  };
  const inFront = () => document.visibilityState === "visible";
  if (inFront()) beat("viewing");
  setInterval(() => { if (inFront()) beat("viewing"); }, 10000);
  document.addEventListener("visibilitychange", () => beat(inFront() ? "viewing" : "left"));
  let typed = 0;
  document.addEventListener("input", (e) => {
    if (!e.target.matches?.("#text, #note-text") || Date.now() - typed < 3000) return;
    typed = Date.now();
    beat("typing");
  });
  window.addEventListener("pagehide", () => {
    fetch(path, {
      method: "POST", keepalive: true, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify({ state: "left" }),
    }).catch(() => {});
  });
  document.addEventListener("palaver:presence", (e) => {
    if (e.detail.conversation_id === thread.dataset.conversation) show(e.detail.people);
  });
}
