// The channels page: linking an Evolution number by QR code (shown, and replaced as the server
// sends new ones, until the phone links), live state badges, and where a new number lands.

const { api, describe, toast } = await import("./api.js" + new URL(import.meta.url).search);

const STATES = ["created", "connecting", "connected", "disconnected", "broken"];

function card(id) {
  return document.querySelector(`.channel[data-channel="${CSS.escape(id)}"]`);
}

function setState(el, state, detail) {
  if (!STATES.includes(state)) return;
  const badge = el.querySelector('[data-role="state"]');
  badge.className = "badge state-" + state;
  badge.textContent = state;
  const note = el.querySelector('[data-role="detail"]');
  if (note && detail !== undefined) note.textContent = detail || "";
  const qr = el.querySelector('[data-role="qr"]');
  if (qr && state === "connected") {
    qr.hidden = true;
    const button = el.querySelector('[data-action="connect"]');
    if (button) button.textContent = "Check connection";
  }
}

function showQr(el, qr) {
  const box = el.querySelector('[data-role="qr"]');
  if (!box || !qr) return;
  const image = box.querySelector('[data-role="qr-image"]');
  // Only an image the server made: a data URL of a picture.
  if (typeof qr.image === "string" && qr.image.startsWith("data:image/")) {
    image.src = qr.image;
    image.hidden = false;
  } else {
    image.hidden = true;
  }
  box.querySelector('[data-role="pairing"]').textContent = qr.pairing_code
    ? "Or enter this code on the phone: " + qr.pairing_code
    : "";
  box.hidden = false;
}

async function connect(el) {
  const button = el.querySelector('[data-action="connect"]');
  button.disabled = true;
  try {
    const answer = await api("POST", `/api/v1/channels/${el.dataset.channel}/connect`, {});
    setState(el, answer.state);
    if (answer.qr) showQr(el, answer.qr);
    else if (answer.state === "connected") toast("This number is linked.");
  } catch (e) {
    toast(describe(e));
  } finally {
    button.disabled = false;
  }
}

for (const el of document.querySelectorAll(".channel")) {
  el.querySelector('[data-action="connect"]')?.addEventListener("click", () => connect(el));
  el.querySelector('[data-action="logout"]')?.addEventListener("click", async () => {
    if (!confirm("Log this number out? Customers' messages stop arriving until it is linked again.")) return;
    try {
      await api("POST", `/api/v1/channels/${el.dataset.channel}/logout`);
      setState(el, "disconnected", "");
    } catch (e) {
      toast(describe(e));
    }
  });
}

// Live: a new QR code, a state change.
document.addEventListener("palaver:event", (e) => {
  const event = e.detail;
  if (event.type !== "channel.state" || !event.channel_id) return;
  const el = card(event.channel_id);
  if (!el) return;
  const data = event.data || {};
  setState(el, data.state, data.detail);
  if (data.qr && data.state !== "connected") showQr(el, data.qr);
});

// Polling: states as the API reads them.
document.addEventListener("palaver:poll", async () => {
  try {
    for (const channel of await api("GET", "/api/v1/channels")) {
      const el = card(channel.id);
      if (el) setState(el, channel.state, channel.state_detail);
    }
  } catch {
    // The indicator already says the connection is down.
  }
});

// A number just added: shown, and an Evolution one starts linking at once. A Meta number's card
// shows the verify token it was saved with (the form below gets a fresh one for the next
// number), kept for this tab only until the page after the reload has shown it.
const VERIFY_KEY = "palaver.verify-token.";
document.addEventListener("palaver:done", (e) => {
  const channel = e.detail;
  if (channel.provider === "meta") {
    const token = document.querySelector("#meta-verify")?.value;
    if (token) sessionStorage.setItem(VERIFY_KEY + channel.id, token);
  }
  location.href = `/channels?added=${encodeURIComponent(channel.id)}#channel-${channel.id}`;
});
const added = new URLSearchParams(location.search).get("added");
if (added) {
  const el = card(added);
  if (el) {
    el.classList.add("just-added");
    const token = sessionStorage.getItem(VERIFY_KEY + added);
    const verify = el.querySelector('[data-role="verify"]');
    if (token && verify) {
      verify.querySelector("input").value = token;
      verify.hidden = false;
      sessionStorage.removeItem(VERIFY_KEY + added);
    }
    el.scrollIntoView({ block: "center" });
    if (el.querySelector('[data-action="connect"]') && el.querySelector(".badge").textContent !== "connected") connect(el);
  }
}
