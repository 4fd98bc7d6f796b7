// The sandbox: a conversation with an agent as a customer would have it, through the production
// pipeline, never sent. Each reply shows its sources and scores, timings, tokens, the rendered
// prompt and the escalation decision; changes tried without saving answer side by side.

const { api, describe, sourceLabel } = await import("./api.js" + new URL(import.meta.url).search);

const root = document.getElementById("sandbox");
if (root) {
  const agent = root.dataset.agent;
  let session = root.dataset.session;
  const chat = document.getElementById("chat");
  const form = document.getElementById("say");
  const text = document.getElementById("said");
  const overrides = document.getElementById("overrides");

  const el = (tag, cls, content) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content !== undefined) node.textContent = content;
    return node;
  };

  function changes() {
    const o = {};
    const prompt = overrides.querySelector('[name="system_prompt"]').value.trim();
    const answerer = overrides.querySelector('[name="answerer"]').value;
    const temperature = overrides.querySelector('[name="temperature"]').value;
    if (prompt) o.system_prompt = prompt;
    if (answerer) o.answerer = answerer;
    if (temperature !== "") o.temperature = Number(temperature);
    return Object.keys(o).length ? o : null;
  }

  function said(words) {
    const li = el("li", "message inbound");
    li.append(el("div", "bubble", words));
    chat.append(li);
    li.scrollIntoView({ block: "end" });
  }

  function outcome(o, label) {
    const box = el("div", "turn");
    if (label) box.append(el("p", "kind", label));
    const bubble = el("div", "bubble");
    if (o.reply) bubble.append(el("p", "text", o.reply));
    else bubble.append(el("p", "muted", o.silence ? `No reply (${o.silence.replaceAll("_", " ")})` : "No reply"));
    box.append(bubble);
    const facts = el("p", "meta");
    facts.append(el("span", "badge action-" + o.action, o.action));
    if (o.escalation) {
      const why = el("span", "escalated", ` Escalated: ${o.escalation.reason.replaceAll("_", " ")}${o.escalation.detail ? " — " + o.escalation.detail : ""}`);
      facts.append(why);
    }
    const g = o.generation;
    if (g) {
      const parts = [g.answerer + (g.model ? ` (${g.model})` : "")];
      if (g.confidence != null) parts.push(`confidence ${g.confidence.toFixed(2)}`);
      parts.push(`${g.tokens_in} tokens in, ${g.tokens_out} out`);
      parts.push(`retrieval ${g.retrieve_ms.toFixed(0)} ms, generation ${g.generate_ms.toFixed(0)} ms, total ${g.total_ms.toFixed(0)} ms`);
      facts.append(el("span", "", " · " + parts.join(" · ")));
    }
    box.append(facts);
    if (o.sources && o.sources.length) {
      const details = el("details", "sources");
      details.append(el("summary", "", `Sources (${o.sources.length})`));
      const list = el("ol");
      for (const s of o.sources) {
        const item = el("li");
        const cited = g && g.cited && g.cited.includes(s.n) ? " · cited" : "";
        item.append(el("p", "meta", `[${s.n}] ${sourceLabel(s.title || s.source, s.heading)} · score ${s.score.toFixed(3)} · similarity ${s.similarity.toFixed(3)} · relevance ${Number(s.relevance ?? 0).toFixed(3)}${cited}`));
        item.append(el("p", "text", s.text));
        list.append(item);
      }
      details.append(list);
      box.append(details);
    }
    if (o.support_note) {
      const note = el("details", "note");
      note.append(el("summary", "", "Note sent to support"), el("p", "text", o.support_note));
      box.append(note);
    }
    if (g && g.prompt) {
      const prompt = el("details", "prompt");
      prompt.append(el("summary", "", "Prompt"), el("pre", "", g.prompt));
      box.append(prompt);
    }
    return box;
  }

  async function send(body, words) {
    said(words);
    const li = el("li", "message outbound");
    li.setAttribute("aria-busy", "true");
    li.append(el("p", "muted", "…"));
    chat.append(li);
    const tried = changes();
    const path = `/api/v1/sandbox/${encodeURIComponent(agent)}/messages`;
    const ask = (extra, sess) => {
      if (body instanceof FormData) {
        const form = new FormData();
        for (const [k, v] of body) form.append(k, v);
        form.append("session", sess);
        if (extra) form.append("overrides", JSON.stringify(extra));
        return api("POST", path, form);
      }
      return api("POST", path, { ...body, session: sess, ...(extra ? { overrides: extra } : {}) });
    };
    try {
      const [saved, other] = await Promise.all([ask(null, session), tried ? ask(tried, session + "-try") : null]);
      li.replaceChildren();
      if (other) {
        const pair = el("div", "side-by-side");
        pair.append(outcome(saved, "Saved agent"), outcome(other, "With your changes"));
        li.append(pair);
      } else {
        li.append(outcome(saved));
      }
      if (saved.question && saved.question !== words) li.prepend(el("p", "transcript", `Heard: “${saved.question}”`));
    } catch (e) {
      li.replaceChildren(el("p", "error", describe(e)));
    } finally {
      li.removeAttribute("aria-busy");
      li.scrollIntoView({ block: "end" });
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const words = text.value.trim();
    if (!words) return;
    text.value = "";
    send({ text: words }, words);
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });

  // A voice note: a file, or recorded here.
  const voice = document.getElementById("voice");
  voice.addEventListener("change", () => {
    const file = voice.files[0];
    if (!file) return;
    const body = new FormData();
    body.append("audio", file, file.name);
    send(body, `🎤 ${file.name}`);
    voice.value = "";
  });
  const record = document.getElementById("record");
  if (navigator.mediaDevices && window.MediaRecorder) {
    record.hidden = false;
    let recorder = null;
    record.addEventListener("click", async () => {
      if (recorder) {
        recorder.stop();
        return;
      }
      try {
        const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
        const type = MediaRecorder.isTypeSupported("audio/ogg; codecs=opus") ? "audio/ogg; codecs=opus" : "audio/webm; codecs=opus";
        recorder = new MediaRecorder(stream, { mimeType: type });
        const parts = [];
        recorder.ondataavailable = (e) => parts.push(e.data);
        recorder.onstop = () => {
          stream.getTracks().forEach((t) => t.stop());
          const blob = new Blob(parts, { type: type.split(";")[0] });
          const body = new FormData();
          body.append("audio", blob, type.includes("ogg") ? "note.ogg" : "note.webm");
          send(body, "🎤 recorded voice note");
          recorder = null;
          record.textContent = "Record";
        };
        recorder.start();
        record.textContent = "Stop and send";
      } catch (e) {
        record.textContent = "Record";
        recorder = null;
        chat.append(el("li", "error", "The microphone is not available: " + e.message));
      }
    });
  }

  document.getElementById("reset").addEventListener("click", async () => {
    try {
      await Promise.all([
        api("POST", `/api/v1/sandbox/${encodeURIComponent(agent)}/reset`, { session }),
        api("POST", `/api/v1/sandbox/${encodeURIComponent(agent)}/reset`, { session: session + "-try" }),
      ]);
      chat.replaceChildren();
      text.focus();
    } catch (e) {
      chat.append(el("li", "error", describe(e)));
    }
  });
}
