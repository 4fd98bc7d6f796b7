// The inbox from the keyboard, and replies kept while a person moves between conversations.
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
