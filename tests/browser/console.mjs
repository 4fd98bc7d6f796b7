// The console as people use it, in headless Chromium. Run by tests/it/browser.rs, which starts
// the server with the providers mocked and answers this script's requests for what only it can
// do (signed provider webhooks, counting what reached a mock): a request is one JSON line on
// stdout, its answer one JSON line on stdin. Any failure exits non-zero with the step's name.

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { mkdirSync, writeFileSync, readFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import assert from "node:assert/strict";

const BASE = process.env.PALAVER_URL;
const SHOTS = process.env.SCREENSHOTS;
mkdirSync(SHOTS, { recursive: true });

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(request) {
  process.stdout.write("ASK " + JSON.stringify(request) + "\n");
  const { value, done } = await lines.next();
  if (done) throw new Error("the test harness went away");
  const answer = JSON.parse(value);
  if (answer.error) throw new Error(`${request.ask}: ${answer.error}`);
  return answer;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const problems = [];
function watch(page, who) {
  page.on("console", (m) => { if (m.type() === "error") problems.push(`${who}: console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`${who}: ${e.message}`));
  page.on("dialog", (d) => d.accept());
}
async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

let step = "start";
async function as(name, fn) {
  step = name;
  const started = Date.now();
  await fn();
  process.stdout.write(`STEP ${name} ${Date.now() - started} ms\n`);
}

// A person in São Paulo (UTC-3, no daylight saving): times read in their zone, not the server's.
const ZONE = "America/Sao_Paulo";
const desktop = await browser.newContext({ viewport: { width: 1280, height: 860 }, timezoneId: ZONE, locale: "en-GB" });
await desktop.grantPermissions(["notifications"], { origin: BASE });
// Notifications the pages show are noted, to be checked.
await desktop.addInitScript(() => {
  window.__notifications = [];
  if (!window.Notification) return;
  const Shown = window.Notification;
  window.Notification = class extends Shown {
    constructor(title, options) {
      super(title, options);
      window.__notifications.push(title);
    }
  };
});
const page = await desktop.newPage();
watch(page, "owner");

try {
  await as("first run and sign-in", async () => {
    await page.goto(BASE + "/");
    await page.waitForURL("**/setup");
    await page.goto(process.env.SETUP_URL);
    await shot(page, "01-setup");
    await page.fill("#name", "Marta Silva");
    await page.fill("#email", "marta@casanube.example");
    await page.fill("#password", "correct horse battery");
    await page.click("button[type=submit]");
    await page.waitForURL("**/inbox");
    await page.waitForSelector("#live[data-state=live]", { timeout: 5000 });
    // An empty inbox says what to do first, each step a link, none done yet.
    const steps = page.locator(".first-run .step");
    assert.equal(await steps.count(), 4);
    assert.equal(await page.locator(".first-run .step.done").count(), 0);
    assert.deepEqual(await page.$$eval(".first-run .step a", (links) => links.map((a) => a.getAttribute("href"))),
      ["/agents", "/agents", "/sandbox", "/channels"]);
    await shot(page, "01b-first-run");
    // On a phone every page of the menu is in view, and reached with the keyboard.
    await page.setViewportSize({ width: 390, height: 844 });
    const menu = await page.$$eval("nav[aria-label=Main] a", (links) => links.map((a) => {
      const box = a.getBoundingClientRect();
      return { text: a.textContent.trim(), inView: box.left >= 0 && box.right <= window.innerWidth && box.width > 0 };
    }));
    assert.deepEqual(menu.map((m) => m.text), ["Inbox", "Contacts", "Reports", "Channels", "Teams", "Agents", "Knowledge gaps", "Sandbox", "Evals", "Settings", "API"]);
    assert.ok(menu.every((m) => m.inView), `every page in view: ${JSON.stringify(menu)}`);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "01c-phone-menu");
    await page.focus("nav[aria-label=Main] a[href='/evals']");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), "Settings");
    await page.keyboard.press("Enter");
    await page.waitForURL("**/settings");
    await shot(page, "01d-phone-settings");
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.goto(BASE + "/inbox");
    // Signing out and in again.
    await page.click("text=Sign out");
    await page.waitForURL("**/sign-in**");
    await page.fill("#email", "marta@casanube.example");
    await page.fill("#password", "wrong password here");
    await page.click("button[type=submit]");
    await page.waitForSelector(".error");
    await page.fill("#password", "correct horse battery");
    await page.click("button[type=submit]");
    await page.waitForURL("**/inbox");
  });

  await as("an agent with knowledge", async () => {
    await page.click("nav >> text=Agents");
    await page.fill("#new-name", "demo");
    await page.fill("#new-business", "Casa Nube");
    await page.fill("#new-prompt", "You answer customers of Casa Nube, a bakery in Lisbon. Be brief.");
    await page.click("form[data-api] button[type=submit]");
    await page.waitForURL("**/agents/demo");
    await page.setInputFiles("#files", [process.env.KNOWLEDGE_FAQ, process.env.KNOWLEDGE_HOURS]);
    await page.click("#upload button[type=submit]");
    await page.waitForSelector("#uploads li.done >> nth=1", { timeout: 30000 });
    await page.waitForSelector("#documents >> text=faq.md");
    await page.fill("#search-q", "Which payment methods do you accept?");
    await page.click("#search button[type=submit]");
    await page.waitForSelector("#passages li.passage");
    const found = await page.textContent("#passages");
    assert.match(found, /MB WAY/, "the uploaded document is searchable");
    // Replies carry no "(Source: …)" unless asked for.
    assert.equal(await page.isChecked("#cite-sources"), false);
    // The expert settings are folded under Advanced, opened with the keyboard.
    assert.ok(await page.locator("#confidence").isHidden(), "the confidence is an advanced setting");
    await page.focus("#advanced summary");
    await page.keyboard.press("Enter");
    assert.ok(await page.$eval("#advanced", (d) => d.open), "Enter opens Advanced");
    await page.fill("#confidence", "0.3");
    await page.fill("#keywords", "complaint, refund");
    // The bot's words for a Portuguese customer, in their own words; the shipped ones shown.
    await page.click("summary >> text=Portuguese (pt)");
    assert.match(await page.getAttribute("#msg-pt-escalation", "placeholder"), /Vou passar a sua mensagem/);
    await page.fill("#msg-pt-escalation", "Já lhe passo a um colega da pastelaria.");
    await page.click("form[data-method=PATCH] button[type=submit]");
    await page.waitForSelector("[data-role=saved]:not([hidden])");
    await shot(page, "02-agent");
    // A wrong advanced value, once Advanced is folded again, is shown where it can be mended.
    await page.click("#advanced summary");
    assert.equal(await page.$eval("#advanced", (d) => d.open), false);
    await page.$eval("#top-k", (el) => { el.value = "99"; });
    await page.click("form[data-method=PATCH] button[type=submit]");
    await page.waitForFunction(() => document.getElementById("advanced").open, null, { timeout: 2000 });
    assert.equal(await page.evaluate(() => document.activeElement.id), "top-k", "the refused field has the focus");
    await shot(page, "02e-advanced-refused");
    await page.reload();
    assert.equal(await page.inputValue("#top-k"), "4", "nothing was saved");
    assert.equal(await page.inputValue("#confidence"), "0.3");
    assert.equal(await page.inputValue("#msg-pt-escalation"), "Já lhe passo a um colega da pastelaria.");
    assert.ok(await page.$eval("#msg-pt-escalation", (el) => el.closest("details").open), "a language with the agent's own words opens");
    // On a phone's width the settings and the messages fit, nothing overflows.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await page.focus("#msg-pt-escalation");
    await shot(page, "02b-phone-agent");
    await (await page.$("fieldset.languages")).screenshot({ path: `${SHOTS}/02c-phone-messages.png` });
    await page.setViewportSize({ width: 1280, height: 860 });
    await (await page.$("fieldset.languages")).screenshot({ path: `${SHOTS}/02d-messages.png` });
  });

  await as("the agent's instructions drafted from its documents", async () => {
    // With the keyboard: the button, then the draft and the eval suite run twice.
    await page.focus("#draft-start");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#draft-comparison", { timeout: 60000 });
    const draft = await page.inputValue("#draft-text");
    assert.match(draft, /^You answer Casa Nube's customers on WhatsApp\./, draft);
    assert.match(draft, /07:30/, "the opening hours are read off the documents");
    assert.match(draft, /Hand the conversation to a person when a customer:/);
    assert.match(await page.textContent("#draft-made-by"), /without a model/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "draft-text", "the draft has the focus");
    assert.equal(await page.$eval("#draft-text", (el) => el.scrollTop), 0, "the draft shows from its first line");
    assert.ok(await page.locator("#draft-offline").isHidden(), "no fallback is offered after a draft");
    // Both results side by side: a column each, with their totals, a row per case.
    const heads = await page.locator("#draft-comparison thead th").allTextContents();
    assert.deepEqual(heads.map((h) => h.replace(/\d+ of \d+ passed.*/, "").trim()), ["Case", "Saved", "Draft"]);
    assert.deepEqual(await page.locator("#draft-comparison thead .totals").allTextContents(), ["1 of 2 passed (50%)", "1 of 2 passed (50%)"]);
    assert.equal(await page.locator("#draft-comparison tbody tr").count(), 2);
    assert.match(await page.textContent("#draft-comparison tbody tr:nth-child(2)"), /bitcoin/);
    await shot(page, "02f-draft");
    // On a phone's width the draft and both results fit.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "nothing overflows");
    await (await page.$("#draft")).screenshot({ path: `${SHOTS}/02g-phone-draft.png` });
    await page.setViewportSize({ width: 1280, height: 860 });
    // An edited draft runs again; then it goes into the instructions and is saved as usual.
    await page.fill("#draft-text", draft + "\nKeep every reply under three sentences.");
    await page.click("#draft-compare");
    await page.waitForSelector("#draft-status >> text=Results updated.");
    const saved = await page.inputValue("#prompt");
    assert.notEqual(saved, await page.inputValue("#draft-text"), "drafting changes nothing by itself");
    await page.click("#draft-use");
    assert.equal(await page.inputValue("#prompt"), draft + "\nKeep every reply under three sentences.");
    assert.equal(await page.evaluate(() => document.activeElement.id), "prompt");
    await page.click("form[data-method=PATCH] button[type=submit]");
    await page.waitForSelector("[data-role=saved]:not([hidden])");
    await page.reload();
    assert.match(await page.inputValue("#prompt"), /Keep every reply under three sentences\.$/);
  });

  await as("an owner sets the monthly limit of model calls", async () => {
    await page.goto(BASE + "/settings");
    assert.match(await page.textContent("#model-calls-used"), /^0 model calls used in \d{4}-\d{2}\./);
    // Over the highest limit: the browser says so before anything is sent.
    await page.fill("#monthly-limit", "1000001");
    await page.click("#model-calls button[type=submit]");
    assert.ok(await page.$eval("#monthly-limit", (el) => el.validity.rangeOverflow));
    assert.ok(await page.locator("#model-calls [data-role=saved]").isHidden());
    await page.fill("#monthly-limit", "50");
    await page.click("#model-calls button[type=submit]");
    await page.waitForSelector("#model-calls [data-role=saved]:not([hidden])");
    await page.reload();
    assert.equal(await page.inputValue("#monthly-limit"), "50");
    assert.match(await page.textContent("#model-calls-used"), /, of 50\. The count starts again on \d{4}-\d{2}-01 \(UTC\)\./);
    await (await page.$("#model-calls")).screenshot({ path: `${SHOTS}/02h-model-calls.png` });
    await page.goto(BASE + "/agents/demo");
  });

  await as("a model drafts the instructions; with the month's calls used up, the documents do", async () => {
    // The agent answers with the model: the draft is the model's, counted.
    await page.selectOption("#answerer", "openai");
    await page.click("form[data-method=PATCH] button[type=submit]");
    await page.waitForSelector("[data-role=saved]:not([hidden])");
    await page.reload();
    assert.match(await page.textContent("#draft-help"), /with the model/);
    await page.click("#draft-start");
    await page.waitForSelector("#draft-comparison", { timeout: 60000 });
    assert.match(await page.inputValue("#draft-text"), /written by the model/);
    assert.match(await page.textContent("#draft-made-by"), /written by draft-model; 1 of 50 model calls this month/);
    // The model's replies name MB WAY with either instructions: both columns pass it.
    assert.deepEqual(await page.locator("#draft-comparison thead .totals").allTextContents(), ["1 of 2 passed (50%)", "1 of 2 passed (50%)"]);
    await shot(page, "02i-model-draft");
    // The owner lowers the limit to what is used: the next model draft is refused, plainly,
    // and the documents alone still draft.
    const status = await page.evaluate(async () => (await fetch("/api/v1/workspace/model-calls", {
      method: "PUT",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content },
      body: JSON.stringify({ monthly_limit: 1 }),
    })).status);
    assert.equal(status, 200);
    await page.click("#draft-start");
    await page.waitForSelector("#draft-error:not([hidden])");
    assert.match(await page.textContent("#draft-error"), /model calls for \d{4}-\d{2} are used up \(1 of 1\)/);
    assert.ok(await page.locator("#draft-offline").isVisible(), "the way out is offered");
    // The browser notes the refused request; it is the one expected here.
    const refused = problems.findIndex((p) => /status of 429/.test(p));
    assert.ok(refused >= 0, "the refusal was a 429");
    problems.splice(refused, 1);
    await shot(page, "02j-calls-used-up");
    await page.focus("#draft-offline");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => /without a model/.test(document.getElementById("draft-made-by").textContent), null, { timeout: 60000 });
    assert.ok(await page.locator("#draft-error").isHidden());
    assert.ok(await page.locator("#draft-offline").isHidden());
    assert.match(await page.inputValue("#draft-text"), /^You answer Casa Nube's customers on WhatsApp\. /);
    // Back as it was for what follows.
    await page.selectOption("#answerer", "extractive");
    await page.click("form[data-method=PATCH] button[type=submit]");
    await page.waitForSelector("[data-role=saved]:not([hidden])");
  });

  await as("the sandbox shows sources and an escalation", async () => {
    await page.click("nav >> text=Sandbox");
    await page.fill("#said", "Which payment methods do you accept? MB WAY?");
    await page.press("#said", "Enter");
    await page.waitForSelector("#chat .turn");
    assert.match(await page.textContent("#chat .turn"), /Sources \(\d+\)/);
    // The reply is what a customer reads: the sources are beside it, not in it.
    assert.doesNotMatch(await page.textContent("#chat .turn .bubble"), /Source/);
    await page.click("#chat .sources summary");
    assert.match(await page.textContent("#chat .sources"), /MB WAY/);
    // Each source shows its relevance, the scale the confidence threshold is set on.
    assert.match(await page.textContent("#chat .sources"), /relevance -?\d\.\d{3}/);
    // Its place is said once: the title, then the headings under it that do not repeat it.
    const where = await page.textContent("#chat .sources .meta");
    assert.match(where, /Frequently asked questions › Which payment methods do you accept\?/);
    assert.doesNotMatch(where, /Frequently asked questions › Frequently asked questions/);
    assert.doesNotMatch(where, / > /);
    await page.fill("#said", "I want to talk to a human, please");
    await page.press("#said", "Enter");
    await page.waitForSelector("#chat li:nth-child(4) .turn");
    assert.match(await page.textContent("#chat li:nth-child(4)"), /Escalated: human request/);
    await shot(page, "03-sandbox");
    // A Portuguese customer gets the agent's Portuguese words (set on the agent page).
    await page.click("#reset");
    await page.waitForSelector("#chat li", { state: "detached" });
    await page.fill("#said", "Boa tarde, quero falar com uma pessoa, por favor");
    await page.press("#said", "Enter");
    await page.waitForSelector("#chat li:nth-child(2) .turn");
    assert.match(await page.textContent("#chat li:nth-child(2)"), /Já lhe passo a um colega da pastelaria\./);
    // The same turns on a phone's width: sources and their scores wrap, nothing overflows.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "03b-phone-sandbox");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await as("a Meta number", async () => {
    await page.click("nav >> text=Channels");
    await page.fill("#meta-name", "Casa Nube");
    await page.fill("#meta-phone", process.env.PHONE_ID);
    await page.fill("#meta-secret", process.env.APP_SECRET);
    await page.fill("#meta-token", "test-token");
    const verifyToken = await page.inputValue("#meta-verify");
    await page.click("#add-meta button[type=submit]");
    await page.waitForURL("**/channels?added=*");
    const card = page.locator(".channel[data-provider=meta]");
    assert.match(await card.locator("input[readonly]").first().inputValue(), /\/webhooks\/meta$/);
    // The new card shows the verify token the number was saved with, not the fresh one the
    // form below now offers for the next number (Meta's handshake with that one failed).
    const shown = card.locator("[data-role=verify] input");
    await shown.waitFor({ state: "visible" });
    assert.equal(await shown.inputValue(), verifyToken);
    assert.notEqual(await page.inputValue("#meta-verify"), verifyToken);
    assert.match(await card.textContent(), /demo/);
    await shot(page, "04-channels");
  });

  await as("an Evolution number linked by QR code", async () => {
    await page.click("#tab-evolution");
    await page.fill("#evo-name", "Shop phone");
    await page.fill("#evo-instance", "support-bot");
    await page.fill("#evo-server", process.env.EVOLUTION_URL);
    await page.fill("#evo-key", "evo-key");
    await page.uncheck("#add-evolution [name=create_instance]");
    await page.click("#add-evolution button[type=submit]");
    await page.waitForURL("**/channels?added=*");
    const card = page.locator(".channel[data-provider=evolution]");
    const image = card.locator("[data-role=qr-image]");
    await image.waitFor({ state: "visible" });
    const first = await image.getAttribute("src");
    assert.ok(first.startsWith("data:image/png;base64,"), "the QR from /instance/connect is shown");
    await shot(page, "05-qr");
    const id = await card.getAttribute("data-channel");
    await ask({ ask: "evolution_event", channel: id, fixture: "webhook.qrcode.updated.json" });
    await page.waitForFunction((old) => {
      const img = document.querySelector(".channel[data-provider=evolution] [data-role=qr-image]");
      return img && img.src !== old;
    }, first, { timeout: 2000 });
    await ask({ ask: "evolution_event", channel: id, fixture: "webhook.connection.update.open.json" });
    await card.locator("[data-role=state]", { hasText: "connected" }).waitFor({ timeout: 2000 });
    assert.ok(await card.locator("[data-role=qr]").isHidden(), "the QR goes once linked");
    await shot(page, "06-connected");
  });

  let conversation;
  await as("a customer's message appears live, and its reply turns read", async () => {
    await page.click("nav >> text=Inbox");
    await page.waitForURL("**/inbox");
    await page.waitForSelector("#live[data-state=live]");
    // Every first step is done; the list waits for the first customer.
    assert.equal(await page.locator(".first-run .step.done").count(), 4);
    await shot(page, "06b-first-run-done");
    const sent = Date.now();
    await ask({ ask: "meta_text", id: "wamid.IN.B1", text: "Which payment methods do you accept? MB WAY?" });
    await page.waitForSelector("#conversations .conversation >> text=Test Customer", { timeout: 2000 });
    process.stdout.write(`MEASURE inbox_live_ms ${Date.now() - sent}\n`);
    await shot(page, "07-inbox");
    await page.click("#conversations .conversation a");
    await page.waitForURL("**/inbox/*");
    conversation = page.url();
    const tick = page.locator(".message.outbound .tick").first();
    await tick.waitFor({ timeout: 10000 });
    // The customer got the answer alone; the inbox shows where it came from.
    const bot = page.locator(".message.role-bot").first();
    assert.match(await bot.locator(".text").textContent(), /MB WAY/);
    assert.doesNotMatch(await bot.locator(".text").textContent(), /Source/);
    await bot.locator(".sources summary").click();
    assert.match(await bot.locator(".sources").textContent(), /faq/i);
    const { provider_id } = await ask({ ask: "bot_reply" });
    await ask({ ask: "meta_status", provider_id, status: "read" });
    await page.locator(".message.outbound .tick[data-status=read]").first().waitFor({ timeout: 2000 });
  });

  await as("a person's reply reaches the Graph API once", async () => {
    await page.fill("#text", "Yes: MB WAY, cards and cash. See you soon!");
    await page.press("#text", "Enter");
    await page.waitForSelector(".message.outbound >> text=See you soon!");
    const { count } = await ask({ ask: "graph_sends", text: "See you soon!" });
    assert.equal(count, 1, "the human reply was sent once");
    // A picture with a caption, attached from the reply box.
    const png = Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkaPhfDwAEhgGAhFeM5wAAAABJRU5ErkJggg==",
      "base64");
    await page.setInputFiles("#file", { name: "shop-front.png", mimeType: "image/png", buffer: png });
    await page.waitForSelector("#attached >> text=shop-front.png");
    await page.fill("#text", "This is our shop");
    await page.press("#text", "Enter");
    await page.waitForSelector(".message.outbound img[alt^='This is our shop']");
    const sent = await ask({ ask: "graph_sends", text: "This is our shop" });
    assert.equal(sent.count, 1, "the picture was sent once");
    // The replies are signed with the person's name, and a person answering is said as such,
    // not raised as an escalation.
    assert.match(await page.textContent(".message.outbound:has-text('See you soon!') .meta"), /^\s*Marta Silva ·/);
    assert.match(await page.textContent(".takeover"), /A person is answering: Marta Silva replied from the inbox/);
    assert.equal(await page.locator(".escalation").count(), 0);
    assert.equal(await page.textContent(".thread-head .badge"), "with a person");
    await shot(page, "08-conversation");
  });

  await as("a customer's edit and deletion change their messages in the open thread", async () => {
    await ask({ ask: "meta_text", id: "wamid.IN.E1", text: "Do you deliver on Sundys?" });
    await page.waitForSelector(".message.inbound >> text=Do you deliver on Sundys?", { timeout: 5000 });
    await ask({ ask: "meta_message", message: { id: "wamid.IN.E1-edit", type: "edit",
      edit: { original_message_id: "wamid.IN.E1",
        message: { type: "text", text: { body: "Do you deliver on Sundays?" } } } } });
    await page.waitForSelector(".message.inbound >> text=Do you deliver on Sundays?", { timeout: 5000 });
    await page.click(".message.inbound .edits summary");
    await page.waitForSelector(".message.inbound .edits >> text=Do you deliver on Sundys?");
    await ask({ ask: "meta_text", id: "wamid.IN.E2", text: "Sorry, wrong chat" });
    await page.waitForSelector(".message.inbound >> text=Sorry, wrong chat", { timeout: 5000 });
    // The thread was refreshed live; what was opened stays open.
    assert.equal(await page.locator(".message.inbound .edits[open]").count(), 1);
    await ask({ ask: "meta_message", message: { id: "wamid.IN.E2-revoke", type: "revoke",
      revoke: { original_message_id: "wamid.IN.E2" } } });
    await page.waitForSelector(".message.inbound .deleted", { timeout: 5000 });
    await shot(page, "08b-changed-messages");
  });

  await as("an escalated conversation notifies, is resolved, then handed back", async () => {
    await page.click("#notify");
    await page.waitForSelector("#notify[aria-pressed=true]");
    // While a person answers, the bot stays quiet and the conversation stays theirs.
    await ask({ ask: "meta_text", id: "wamid.IN.B2", text: "I want to talk to a human" });
    await page.waitForSelector(".message.inbound >> text=I want to talk to a human", { timeout: 5000 });
    assert.equal(await page.textContent(".thread-head .badge"), "with a person");
    await page.click(".thread-head button:has-text('Resolve')");
    await page.waitForSelector(".thread-head .badge.status-resolved");
    await ask({ ask: "meta_text", id: "wamid.IN.B3", text: "I want to talk to a person" });
    await page.waitForSelector(".thread-head .badge.status-escalated", { timeout: 5000 });
    await page.waitForSelector(".escalation >> text=Escalated:", { timeout: 5000 });
    await page.waitForFunction(() => window.__notifications.includes("Conversation escalated"), null, { timeout: 2000 });
    await shot(page, "09-escalated");
    await page.click("text=Hand back to bot");
    await page.waitForSelector(".thread-head .badge.status-active");
  });

  await as("a conversation is assigned from a list, and a bot reply becomes a failing eval case", async () => {
    await page.selectOption("#assign-to", "");
    await page.click("form.assign button[type=submit]");
    await page.waitForFunction(() => !document.querySelector(".thread-head").textContent.includes("assigned to"));
    await page.selectOption("#assign-to", { label: "Marta Silva" });
    await page.click("form.assign button[type=submit]");
    await page.waitForSelector(".thread-head >> text=assigned to Marta Silva");
    await page.click(".message.role-bot >> text=Make eval case");
    await page.waitForURL("**/evals/case?*");
    const suite = await page.inputValue("#suite");
    assert.match(suite, /say: Which payment methods do you accept\? MB WAY\?/);
    assert.match(suite, /not_contains/);
    await shot(page, "10-eval-case");
    await page.click("#case button[type=submit]");
    await page.waitForURL(/\/evals\/[0-9a-f-]{36}$/);
    // The bot still gives the answer the customer got, so the new case fails.
    await page.waitForSelector("#run[data-status=failed]", { timeout: 60000 });
    assert.equal((await page.textContent("[data-role=pass-rate]")).trim(), "0.0%");
  });

  await as("an eval run started from the page reports its pass rate", async () => {
    await page.click("nav >> text=Evals");
    await page.check("text=faq.yaml");
    await page.click("#start button[type=submit]");
    await page.waitForURL(/\/evals\/[0-9a-f-]{36}$/);
    await page.waitForSelector("#run[data-status=passed], #run[data-status=failed]", { timeout: 60000 });
    assert.equal((await page.textContent("[data-role=pass-rate]")).trim(), "100.0%");
    await shot(page, "11-eval");
  });

  await as("a second customer: the inbox side by side, from the keyboard, drafts kept", async () => {
    await ask({ ask: "meta_text", id: "wamid.IN.C1", from: "16505550000", name: "Rui Costa", text: "Do you bake gluten-free bread?" });
    await page.goto(BASE + "/inbox");
    await page.waitForSelector("#conversations .conversation >> text=Rui Costa");
    // Times read relative to now, the exact one (in the viewer's zone) on hover.
    const time = page.locator("#conversations time").first();
    await page.waitForFunction(() => document.querySelector("#conversations time").title !== "");
    assert.match(await time.textContent(), /^(just now|\d+ min ago)$/);
    // The exact time as São Paulo reads it (three hours behind the server's UTC).
    const [exact, utc] = await time.evaluate((t, zone) => {
      const at = new Date(t.getAttribute("datetime"));
      const format = (timeZone) => new Intl.DateTimeFormat(undefined, { timeZone, dateStyle: "full", timeStyle: "long" }).format(at);
      return [format(zone), format("UTC")];
    }, ZONE);
    assert.equal(await time.getAttribute("title"), exact);
    assert.notEqual(exact, utc);
    // ? lists the keys; Escape closes the list.
    await page.keyboard.press("?");
    await page.waitForSelector("dialog#keys[open]");
    assert.match(await page.textContent("dialog#keys"), /Next conversation in the list/);
    await shot(page, "15-keys");
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.getElementById("keys").open);
    const focused = () => page.evaluate(() => document.activeElement.closest(".conversation")?.querySelector(".name").textContent
      ?? document.activeElement.id);
    await page.keyboard.press("j");
    assert.equal(await focused(), "Rui Costa");
    await page.keyboard.press("j");
    assert.equal(await focused(), "Test Customer");
    await page.keyboard.press("k");
    assert.equal(await focused(), "Rui Costa");
    // / searches; keys typed in a field are words, not commands.
    await page.keyboard.press("/");
    assert.equal(await focused(), "q");
    await page.keyboard.type("jk");
    assert.equal(await page.inputValue("#q"), "jk");
    await page.fill("#q", "");
    await page.keyboard.press("Escape");
    await page.keyboard.press("j");
    await page.keyboard.press("Enter");
    await page.waitForSelector(".thread-head >> text=Rui Costa");
    const rui = page.url();
    // On a wide screen the list stays beside the open conversation.
    const list = await page.locator(".list-pane.beside").boundingBox();
    const thread = await page.locator(".thread-pane").boundingBox();
    assert.ok(list && thread && list.x + list.width <= thread.x, `the list is left of the conversation: ${JSON.stringify({ list, thread })}`);
    assert.ok(list.y < thread.y + thread.height && thread.y < list.y + list.height, "side by side");
    assert.equal(await page.textContent("#conversations a[aria-current=page] .name"), "Rui Costa");
    // r writes a reply; the draft stays with this conversation while another is read.
    await page.keyboard.press("r");
    assert.equal(await focused(), "text");
    await page.keyboard.type("We bake a gluten-free loaf on Fridays.");
    await shot(page, "16-side-by-side");
    await page.keyboard.press("Escape");
    await page.keyboard.press("j");
    assert.equal(await focused(), "Test Customer");
    await page.keyboard.press("Enter");
    await page.waitForURL(conversation);
    await page.waitForSelector(".thread-head >> text=Test Customer");
    assert.equal(await page.inputValue("#text"), "", "the other conversation has no draft");
    await page.keyboard.press("k");
    await page.keyboard.press("Enter");
    await page.waitForURL(rui);
    await page.waitForFunction(() => document.getElementById("text").value !== "", null, { timeout: 2000 });
    assert.equal(await page.inputValue("#text"), "We bake a gluten-free loaf on Fridays.");
    await page.press("#text", "Enter");
    await page.waitForSelector(".message.outbound >> text=gluten-free loaf on Fridays");
    await page.reload();
    assert.equal(await page.inputValue("#text"), "", "a sent reply leaves no draft");
    // e resolves the open conversation.
    await page.keyboard.press("e");
    await page.waitForSelector(".thread-head .badge.status-resolved");
    // A phone keeps one column: the conversation alone, the list on its own page.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.locator(".list-pane.beside").isHidden(), "no list beside a conversation on a phone");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "17-phone-conversation");
    await page.goto(BASE + "/inbox");
    assert.ok(await page.locator("#conversations").isVisible());
    assert.ok(await page.locator(".thread-pane.choose").isHidden());
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "18-phone-inbox");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await as("labels, a canned response and a snooze, as a person uses them", async () => {
    // An owner defines labels and canned responses in Settings.
    await page.click("nav >> text=Settings");
    for (const [name, colour] of [["VIP", "green"], ["refund", "red"]]) {
      await page.fill("#label-name", name);
      await page.selectOption("#label-colour", colour);
      await page.click("#new-label button[type=submit]");
      await page.waitForSelector(`.labels-table .chip.colour-${colour} >> text=${name.toLowerCase()}`);
    }
    // A variable nobody can fill is refused, said next to the form.
    await page.fill("#canned-code", "hours");
    await page.fill("#canned-content", "Hi {{contact.email}}");
    const noted = problems.length;
    await page.click("#new-canned button[type=submit]");
    await page.waitForSelector("#new-canned .form-error:not([hidden])");
    assert.match(await page.textContent("#new-canned .form-error"), /unknown variable \{\{contact\.email\}\}/);
    // The browser notes the refusal (a 422) as a failed load: that one was asked for.
    assert.ok(problems.slice(noted).every((p) => /status of 422/.test(p)), problems.slice(noted).join("\n"));
    problems.splice(noted);
    await page.fill("#canned-content", "Hi {{contact.name}}, {{agent.name}} here: we bake from 7:00 every day.");
    await page.click("#new-canned button[type=submit]");
    await page.waitForSelector(".canned-list input[value=hours]");
    await page.fill("#canned-code", "callback");
    await page.fill("#canned-content", "We will call you back at {{contact.phone}} today.");
    await page.click("#new-canned button[type=submit]");
    await page.waitForSelector(".canned-list input[value=callback]");
    await shot(page, "19-settings-labels-canned");

    // Rui's conversation is labelled from the keyboard: the label's menu, then Add.
    await page.goto(BASE + "/inbox");
    await page.click("#conversations .conversation >> text=Rui Costa");
    await page.waitForSelector(".thread-head >> text=Rui Costa");
    const rui = page.url();
    await page.focus("#add-label");
    await page.selectOption("#add-label", "vip");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#labels .chip.colour-green >> text=vip");
    assert.deepEqual(await page.$$eval("#add-label option", (o) => o.map((x) => x.value)), ["", "refund"],
      "a label on the conversation is not offered again");

    // The list shows the labels, and filters by one.
    await page.goto(BASE + "/inbox");
    await page.waitForSelector("#conversations .conversation:has-text('Rui Costa') .chip >> text=vip");
    await page.selectOption("#conversation_label", "vip");
    await page.click(".filters button[type=submit]");
    await page.waitForURL(/conversation_label=vip/);
    assert.deepEqual(await page.$$eval("#conversations .conversation .name", (n) => n.map((x) => x.textContent)), ["Rui Costa"]);
    // Live: a label put on elsewhere (here through the API) brings the other conversation in.
    const other = conversation.split("/").pop();
    await page.evaluate(async (id) => {
      const csrf = document.querySelector("meta[name=csrf-token]").content;
      await fetch(`/api/v1/conversations/${id}/labels`, { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify({ label: "vip" }) });
    }, other);
    await page.waitForSelector("#conversations .conversation >> text=Test Customer", { timeout: 5000 });
    // Live: a label recoloured elsewhere (a `label.updated` event) changes its chips, then back.
    const recolour = (colour) => page.evaluate(async (colour) => {
      const csrf = document.querySelector("meta[name=csrf-token]").content;
      const labels = await (await fetch("/api/v1/labels", { credentials: "same-origin" })).json();
      const vip = labels.find((l) => l.name === "vip");
      const res = await fetch(`/api/v1/labels/${vip.id}`, { method: "PATCH", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify({ colour }) });
      return res.status;
    }, colour);
    assert.equal(await recolour("teal"), 200);
    await page.waitForSelector("#conversations .conversation:has-text('Rui Costa') .chip.colour-teal >> text=vip", { timeout: 5000 });
    assert.equal(await recolour("green"), 200);
    await page.waitForSelector("#conversations .conversation:has-text('Rui Costa') .chip.colour-green >> text=vip", { timeout: 5000 });
    await shot(page, "20-inbox-label-filter");
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "20b-phone-inbox-label-filter");
    await page.setViewportSize({ width: 1280, height: 860 });

    // A canned response: "/" lists them, typing narrows, arrows choose, Enter inserts it filled in.
    await page.goto(rui);
    await page.click("#text");
    await page.keyboard.type("/");
    await page.waitForSelector("#canned:not([hidden])");
    assert.equal(await page.locator("#canned [role=option]:visible").count(), 2);
    await page.keyboard.press("Escape");
    assert.ok(await page.locator("#canned").isHidden(), "Escape closes the list");
    assert.equal(await page.inputValue("#text"), "/", "and keeps what was typed");
    await page.keyboard.type("h");
    await page.waitForSelector("#canned:not([hidden])");
    assert.deepEqual(await page.$$eval("#canned [role=option]:not([hidden])", (o) => o.map((x) => x.dataset.code)), ["hours"]);
    await page.keyboard.press("Backspace");
    await page.waitForFunction(() => document.querySelectorAll("#canned [role=option]:not([hidden])").length === 2);
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.getAttribute("#canned [aria-selected=true]", "data-code"), "hours");
    await shot(page, "21-canned");
    await page.keyboard.press("Enter");
    assert.ok(await page.locator("#canned").isHidden());
    assert.equal(await page.inputValue("#text"), "Hi Rui Costa, Marta Silva here: we bake from 7:00 every day.",
      "inserted with its variables filled, not sent");
    assert.equal(await page.locator(".message.outbound >> text=we bake from 7:00").count(), 0);
    await page.keyboard.press("Enter");
    await page.waitForSelector(".message.outbound >> text=Hi Rui Costa, Marta Silva here: we bake from 7:00 every day.");

    // Snoozed until tomorrow 9:00 where the person is (São Paulo): out of the list, then back.
    await page.click(".snooze-menu summary");
    await shot(page, "22-snooze-menu");
    await page.click("button[name=preset][value=tomorrow]");
    await page.waitForSelector(".snoozed");
    const until = await page.getAttribute(".snoozed time", "datetime");
    const local = await page.evaluate((at) => new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hour12: false }).format(new Date(at)), until);
    assert.equal(local, "09:00", `tomorrow 9:00 in the person's zone, not the server's: ${until}`);
    assert.match(await page.textContent(".snoozed time"), /^tomorrow 09:00$/);
    assert.equal(await page.locator("#conversations .conversation >> text=Rui Costa").count(), 0, "out of the list beside");
    await shot(page, "23-snoozed");
    await page.goto(BASE + "/inbox?status=snoozed");
    assert.deepEqual(await page.$$eval("#conversations .conversation .name", (n) => n.map((x) => x.textContent)), ["Rui Costa"]);
    assert.match(await page.textContent("#conversations .snoozed-until"), /Snoozed until tomorrow 09:00/);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(rui);
    await shot(page, "24-phone-snoozed");
    await page.click(".snoozed button:has-text('Unsnooze')");
    await page.waitForSelector(".snooze-menu");
    assert.equal(await page.locator(".snoozed").count(), 0);
    await page.click(".snooze-menu summary");
    assert.ok(await page.locator(".snooze-panel").isVisible());
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "25-phone-snooze-menu");
    // A chosen time, on the phone.
    await page.fill("#snooze-at", "2027-05-04T15:30");
    await page.click(".snooze-at button[type=submit]");
    await page.waitForSelector(".snoozed");
    const chosen = await page.getAttribute(".snoozed time", "datetime");
    assert.equal(new Date(chosen).toISOString(), "2027-05-04T18:30:00.000Z", "15:30 in São Paulo");
    await page.click(".snoozed button:has-text('Unsnooze')");
    await page.waitForSelector(".snooze-menu");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await as("a customer's contact beside the conversation, and the Contacts page with its file", async () => {
    // On a wide screen the contact is a third column, right of the conversation.
    await page.goto(conversation);
    const thread = await page.locator(".thread-pane").boundingBox();
    const panel = await page.locator("#contact").boundingBox();
    assert.ok(panel && thread && thread.x + thread.width <= panel.x, `the contact is right of the thread: ${JSON.stringify({ thread, panel })}`);
    assert.equal(await page.textContent("#contact .contact-number"), "+16505551234");
    assert.ok(await page.locator(".to-contact").isHidden(), "no link to the panel when it is in view");
    // Edited from the keyboard: the form opens with Enter, and is sent.
    await page.focus("#contact .contact-edit summary");
    await page.keyboard.press("Enter");
    await page.fill("#contact-language", "pt");
    await page.fill("#contact-labels", "VIP, catering");
    await page.fill("#contact-attributes", "crm_case = 4711");
    await page.fill("#contact-notes", "Prefers deliveries after 18:00.\nRing twice.");
    await page.click("#contact .contact-form button[type=submit]");
    await page.waitForURL(/#contact$/);
    assert.equal(await page.textContent("#contact .contact-language"), "pt");
    assert.deepEqual(await page.locator("#contact .contact-labels .chip").allTextContents(), ["catering", "vip"]);
    assert.match(await page.textContent("#contact .attributes"), /crm_case\s*4711/);
    assert.equal(await page.textContent("#contact .contact-notes"), "Prefers deliveries after 18:00.\nRing twice.");
    assert.equal(await page.getAttribute("#contact .customer-conversations a", "aria-current"), "page");
    await shot(page, "29-contact-panel");
    // A key the rules refuse is said, and nothing changes.
    await page.click("#contact .contact-edit summary");
    await page.fill("#contact-attributes", "crm case = 4712");
    await page.click("#contact .contact-form button[type=submit]");
    assert.match(await page.textContent("main"), /attributes: line 1: the key `crm case` must be/);
    await page.goto(conversation);
    assert.match(await page.textContent("#contact .attributes"), /4711/);
    // On a phone the panel is under the conversation, one tap away.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click(".to-contact");
    await page.waitForURL(/#contact$/);
    const box = await page.locator("#contact h2").boundingBox();
    assert.ok(box.y >= 0 && box.y < 844, `the panel's heading is in view: ${JSON.stringify(box)}`);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "nothing overflows");
    await page.screenshot({ path: `${SHOTS}/30-phone-contact.png` });
    await page.setViewportSize({ width: 1280, height: 860 });

    // The Contacts page, from the menu: everyone who wrote, found by name or number.
    await page.click("nav >> text=Contacts");
    await page.waitForURL("**/contacts");
    const names = async () => page.$$eval(".contacts-table tbody td[data-label=Name] a", (a) => a.map((x) => x.textContent).sort());
    assert.deepEqual(await names(), ["Rui Costa", "Test Customer"]);
    await page.fill("#contacts-q", "rui");
    await page.keyboard.press("Enter");
    await page.waitForURL(/q=rui/);
    assert.deepEqual(await names(), ["Rui Costa"]);
    await shot(page, "31-contacts-search");
    await page.goto(BASE + "/contacts");

    // A file with a bad row: every problem by its line, and nothing imported.
    const dir = mkdtempSync(`${tmpdir()}/contacts-`);
    const file = `${dir}/contacts.csv`;
    // The workspace has two numbers: each row names the one the customer writes to.
    writeFileSync(file, "name,number,channel,language,labels,notes\n" +
      "Ana Sousa,+351 912 345 678,Casa Nube,pt,vip,\"Orders for the café\non Fridays\"\n" +
      "Bruno Lima,12345,Casa Nube,pt,,\n" +
      "Ana Sousa again,351912345678,Casa Nube,pt,,\n");
    await page.setInputFiles("#import-file", file);
    await page.click("form.import button[type=submit]");
    await page.waitForSelector("#import-problems");
    const problems = await page.$$eval("#import-problems tbody tr", (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
    assert.equal(problems.length, 2, JSON.stringify(problems));
    assert.deepEqual(problems.map((p) => p.slice(0, 2)), [["4", "number"], ["5", "number"]]);
    assert.match(problems[0][2], /7 to 15 digits/);
    assert.match(problems[1][2], /same customer as line 2/);
    assert.deepEqual(await names(), ["Rui Costa", "Test Customer"], "nothing was imported");
    await shot(page, "32-import-refused");
    // Mended, the whole file goes in.
    writeFileSync(file, "name,number,channel,language,labels,notes\n" +
      "Ana Sousa,+351 912 345 678,Casa Nube,pt,vip,\"Orders for the café\non Fridays\"\n" +
      "Bruno Lima,+55 11 91234-5678,Casa Nube,pt,,\n" +
      "=cmd|' /C calc'!A0,+44 20 7946 0000,Casa Nube,en,,\n");
    await page.setInputFiles("#import-file", file);
    await page.click("form.import button[type=submit]");
    await page.waitForURL(/created=3/);
    assert.match(await page.textContent(".notice"), /Imported: 3 new contacts, 0 updated\./);
    assert.deepEqual(await names(), ["=cmd|' /C calc'!A0", "Ana Sousa", "Bruno Lima", "Rui Costa", "Test Customer"]);
    await shot(page, "33-imported");
    // The export: what a spreadsheet would run is escaped, and the file imports back unchanged.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Export CSV")]);
    assert.match(download.suggestedFilename(), /^palaver-contacts-\d{4}-\d{2}-\d{2}\.csv$/);
    const exported = readFileSync(await download.path(), "utf8");
    assert.match(exported, /^name,number,channel,language,labels,notes,attribute:crm_case\n/);
    assert.match(exported, /\n'=cmd\|' \/C calc'!A0,442079460000,Casa Nube,/);
    assert.match(exported, /\nTest Customer,16505551234,Casa Nube,pt,catering; vip,"Prefers deliveries after 18:00\.\nRing twice\.",4711\n/);
    writeFileSync(file, exported);
    await page.setInputFiles("#import-file", file);
    await page.click("form.import button[type=submit]");
    await page.waitForURL(/created=0/);
    assert.match(await page.textContent(".notice"), /Imported: 0 new contacts, 5 updated\./);
    // One contact's page: what is kept about them, and their conversations.
    await page.click(".contacts-table a >> text=Test Customer");
    await page.waitForURL(/\/contacts\/[0-9a-f-]+$/);
    assert.match(await page.textContent("#contact .attributes"), /4711/);
    assert.equal(await page.locator("#contact .customer-conversations a").count(), 1);
    await shot(page, "34-contact-page");
    // On a phone the list reads as cards, nothing overflows.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(BASE + "/contacts");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "nothing overflows");
    await shot(page, "35-phone-contacts");
    await page.goto(BASE + "/contacts");
    writeFileSync(file, "name,phone\nAna,1\n");
    await page.setInputFiles("#import-file", file);
    await page.click("form.import button[type=submit]");
    await page.waitForSelector("#import-problems");
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "the problems fit");
    await shot(page, "36-phone-import-refused");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await as("a satisfaction survey after resolving, and the reports drawn from it all", async () => {
    // The owner asks the agent to send the survey.
    await page.goto(BASE + "/agents/demo");
    await page.check("#csat-enabled");
    await page.click("form[data-method=PATCH] button[type=submit]");
    await page.waitForSelector("[data-role=saved]:not([hidden])");
    await page.reload();
    assert.ok(await page.isChecked("#csat-enabled"), "the survey is on");
    // The customer writes; a person resolves; the survey (a list of five scores) goes out.
    await page.goto(conversation);
    await ask({ ask: "meta_text", id: "wamid.IN.S1", text: "Thanks, that was all I needed" });
    await page.waitForSelector(".message.inbound >> text=Thanks, that was all I needed", { timeout: 5000 });
    await page.click(".thread-head button:has-text('Resolve')");
    await page.waitForSelector(".thread-head .badge.status-resolved");
    await page.waitForSelector(".message.outbound >> text=Please rate the help you got", { timeout: 5000 });
    // The customer taps "5 - Excellent": stored, not a question; the conversation stays resolved.
    await ask({ ask: "meta_message", message: { id: "wamid.IN.S2", type: "interactive",
      interactive: { type: "list_reply", list_reply: { id: "csat:5", title: "5 - Excellent" } } } });
    await page.waitForSelector(".message.inbound >> text=5 - Excellent", { timeout: 5000 });
    await page.reload();
    assert.equal(await page.textContent(".thread-head .badge"), "resolved");

    // Reports, from the menu.
    await page.click("nav >> text=Reports");
    await page.waitForURL(/\/reports\?.*zone=/);
    assert.equal(await page.getAttribute("nav a[href='/reports']", "aria-current"), "page");
    const figure = async (name) => (await page.textContent(`.figures div:has(dt:text-is("${name}")) dd`)).trim();
    assert.ok(Number(await figure("Conversations")) >= 2, "conversations counted");
    assert.equal(await figure("Satisfaction"), "5.0 / 5");
    assert.notEqual(await figure("Escalations"), "0");
    // Each chart is an image with a name and a description, and its figures as a table.
    const charts = await page.$$eval("svg.chart", (all) => all.map((svg) => ({
      role: svg.getAttribute("role"),
      title: svg.querySelector("title")?.textContent,
      desc: svg.querySelector("desc")?.textContent,
    })));
    assert.deepEqual(charts.map((c) => c.title),
      ["Conversations per day", "People's response and resolution times", "Escalations by reason", "Satisfaction scores"]);
    for (const c of charts) {
      assert.equal(c.role, "img");
      assert.ok(c.desc && c.desc.length > 20, `${c.title} is described: ${c.desc}`);
    }
    assert.match(charts[3].desc, /1 answers to 1 surveys, average 5\.0 of 5/);
    await shot(page, "26-reports");
    // From the keyboard: the tables open with Enter, the form is filled and sent with keys.
    await page.focus("#days-h ~ details summary");
    await page.keyboard.press("Enter");
    assert.ok(await page.$eval("#days-h ~ details", (d) => d.open), "Enter opens the table");
    const rows = await page.$$eval("#days-h ~ details tbody tr", (r) => r.length);
    assert.equal(rows, 30, "a row a day");
    await page.focus("#r-channel");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Show");
    await page.keyboard.press("Enter");
    await page.waitForURL(/channel=/);
    assert.ok(Number(await figure("Conversations")) >= 2, "the Meta number has them");
    // The export is the same report as CSV.
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Export CSV")]);
    assert.match(download.suggestedFilename(), /^palaver-report-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv$/);
    const csv = await (await import("node:fs/promises")).readFile(await download.path(), "utf8");
    assert.match(csv, /^date,conversations,answered_by_bot_alone,escalations\n/);
    assert.match(csv, /\ncsat_average,5\.000\n/);
    // Dates the wrong way round are refused where they are chosen.
    await page.fill("#r-from", "2026-12-31");
    await page.fill("#r-to", "2026-12-01");
    await page.click(".report-filters button[type=submit]");
    assert.match(await page.textContent(".error"), /from: must be on or before the last day/);
    await shot(page, "27-reports-refused");
    // On a phone, the charts fit the width, nothing overflows.
    await page.goto(BASE + "/reports");
    await page.waitForURL(/zone=/);
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways scroll");
    const width = await page.$eval("svg.chart", (svg) => svg.getBoundingClientRect().width);
    assert.ok(width <= 390 && width > 300, `the chart fits the phone: ${width}`);
    await shot(page, "28-phone-reports");
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  let invitation;
  await as("an owner invites an inbox agent", async () => {
    await page.click("nav >> text=Settings");
    await page.fill("#invite-email", "joao@casanube.example");
    await page.selectOption("#invite-role", "agent");
    await page.click("form[data-api$=invitations] button[type=submit]");
    const link = page.locator("form[data-api$=invitations] [data-role=secret] input");
    await link.waitFor();
    invitation = await link.inputValue();
    assert.match(invitation, /\/invitations\/accept\?token=/);
    await shot(page, "12-settings");
  });

  await as("an agent (role) answers the inbox but cannot open channels or keys", async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const agent = await phone.newPage();
    watch(agent, "agent");
    // The link is made with the server's public URL; the test server listens elsewhere.
    const link = new URL(invitation);
    await agent.goto(BASE + link.pathname + link.search);
    await agent.fill("#name", "João");
    await agent.fill("#password", "another good password");
    await agent.click("button[type=submit]");
    await agent.waitForURL("**/inbox");
    const nav = await agent.textContent("nav");
    assert.ok(!/Channels|Settings|Agents/.test(nav), `an agent's menu: ${nav}`);
    await shot(agent, "13-phone-inbox");
    await agent.goto(conversation);
    await shot(agent, "14-phone-conversation");
    for (const path of ["/channels", "/settings"]) {
      const response = await agent.goto(BASE + path);
      assert.equal(response.status(), 403, path);
    }
    const keys = await agent.evaluate(async () => (await fetch("/api/v1/api-keys")).status);
    assert.equal(keys, 403, "the API refuses the keys too");
    await phone.close();
  });

  await as("a private note mentions a colleague, and each sees the other there and typing", async () => {
    // João, on his phone, and Marta, at her desk, open the same conversation.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true,
      timezoneId: ZONE, locale: "en-GB" });
    const joao = await phone.newPage();
    watch(joao, "joão");
    await joao.goto(BASE + "/sign-in");
    await joao.fill("#email", "joao@casanube.example");
    await joao.fill("#password", "another good password");
    await joao.click("button[type=submit]");
    await joao.waitForURL("**/inbox");
    await joao.goto(conversation);
    await joao.waitForSelector("#live[data-state=live]", { timeout: 5000 });
    await page.goto(conversation);
    await page.waitForSelector("#live[data-state=live]", { timeout: 5000 });
    // Each sees the other, never themselves.
    await page.waitForSelector("#presence:not([hidden]) >> text=João is viewing", { timeout: 5000 });
    await joao.waitForSelector("#presence:not([hidden]) >> text=Marta Silva is viewing", { timeout: 5000 });
    assert.doesNotMatch(await page.textContent("#presence"), /Marta/);
    // João starts a reply; Marta sees him typing, then not, once he stops.
    await joao.click("#text");
    await joao.keyboard.type("Let me check with");
    await page.waitForSelector("#presence >> text=João is typing…", { timeout: 5000 });
    await shot(page, "31-presence-typing");
    await page.waitForSelector("#presence >> text=João is viewing", { timeout: 12000 });

    const before = (await ask({ ask: "graph_total" })).count;
    // Marta writes a private note that mentions João, without a script's help for the form.
    // "@" and the start of his name offer him (never Marta herself); Enter puts in the word
    // that mentions him alone.
    await page.click("#note-compose summary");
    await page.click("#note-text");
    await page.keyboard.type("@Jo");
    await page.waitForSelector("#mentions:not([hidden])");
    const offered = await page.$$eval("#mentions [role=option]:not([hidden])", (o) => o.map((x) => x.dataset.code));
    assert.ok(offered.includes("joao"), offered.join());
    assert.equal(await page.locator("#mentions [role=option]", { hasText: "Marta" }).count(), 0);
    await shot(page, "32-note-mention-offered");
    await page.keyboard.press("Enter");
    assert.ok(await page.locator("#mentions").isHidden());
    assert.equal(await page.inputValue("#note-text"), "@joao ");
    await page.keyboard.type("can you call this customer back about the refund? @nobody");
    await page.waitForSelector("#mentions:not([hidden]) .none:not([hidden])");
    await page.keyboard.press("Escape");
    assert.ok(await page.locator("#mentions").isHidden(), "Escape closes the list");
    await page.click("#note button[type=submit]");
    await page.waitForSelector(".message.note .mention >> text=@joao");
    const note = page.locator(".message.note").last();
    assert.match(await note.textContent(), /Private note/);
    assert.match(await note.locator(".meta").textContent(), /Marta Silva/);
    assert.equal(await note.locator(".mention").count(), 1, "an unknown @word stays plain text");
    await shot(page, "32-note");
    // João is told in the page (his browser has not been asked to allow notifications), with
    // the way to turn them on, and his thread shows the note.
    await joao.waitForSelector(".toast.mentioned >> text=Marta Silva mentioned you", { timeout: 5000 });
    assert.ok(await joao.locator(".toast.mentioned button >> text=Notify me of mentions").isVisible());
    await joao.waitForSelector(".message.note >> text=call this customer back", { timeout: 5000 });
    assert.ok(await joao.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "nothing overflows");
    await shot(joao, "33-phone-mentioned");
    // Nothing reached the customer.
    assert.equal((await ask({ ask: "graph_total" })).count, before, "a note was sent to WhatsApp");

    // João answers with a note of his own; Marta's page is in the background: a notification.
    await page.evaluate(() => Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true }));
    await joao.fill("#text", "");
    await joao.click("#note-compose summary");
    await joao.fill("#note-text", "@marta done, she will get the refund on Friday.");
    await shot(joao, "34-phone-note-form");
    await joao.click("#note button[type=submit]");
    await joao.waitForSelector(".message.note >> text=she will get the refund on Friday");
    await page.waitForFunction(() => window.__notifications.includes("João mentioned you"), null, { timeout: 5000 });
    await page.evaluate(() => Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true }));
    // João leaves: Marta no longer sees him.
    await joao.goto(BASE + "/inbox");
    await page.waitForSelector("#presence", { state: "hidden", timeout: 5000 });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(conversation);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "nothing overflows");
    await shot(page, "35-phone-notes");
    await page.setViewportSize({ width: 1280, height: 860 });
    await phone.close();
  });

  await as("teams and a channel's rule, by keyboard, on a phone and without a script", async () => {
    await page.goto(BASE + "/inbox");
    await page.click("nav >> text=Teams");
    await page.waitForURL("**/teams");
    // A name of spaces passes the browser's check but not the server's: said, and nothing made.
    await page.fill("#new-team-name", "   ");
    await page.click("#new-team button[type=submit]");
    await page.waitForSelector("main > .error");
    assert.match(await page.textContent("main > .error"), /name: must be 1-64 characters/);
    assert.equal(await page.locator(".teams > li.card").count(), 0);
    await page.fill("#new-team-name", "Vendas");
    await page.check("#new-team label:has-text('João') input");
    await page.check("#new-team label:has-text('Marta Silva') input");
    await page.click("#new-team button[type=submit]");
    const card = page.locator(".teams > li.card", { hasText: "Vendas" });
    await card.waitFor();
    assert.deepEqual(await card.locator(".team-members li > span").allTextContents(),
      ["João (agent)", "Marta Silva (owner)"]);
    const team = (await card.getAttribute("id")).replace("team-", "");
    // The Meta number's escalations go to the team.
    const rule = page.locator(".rule-form", { has: page.locator("label", { hasText: /^Casa Nube$/ }) });
    await rule.locator("select").selectOption(`team:${team}`);
    await rule.locator("button").click();
    await page.waitForURL(/\/teams#channel-/);
    const rules = await page.$$eval(".rule-form select", (s) => s.map((el) => el.value));
    assert.ok(rules.includes(`team:${team}`), JSON.stringify(rules));
    await shot(page, "40-teams");
    // From the keyboard: Marta leaves the team, and the team is renamed with Enter.
    await page.focus(`#team-${team} button[aria-label='Take Marta Silva out of Vendas']`);
    await page.keyboard.press("Enter");
    await page.locator(`#team-${team} .team-members li > span`, { hasText: "Marta" }).waitFor({ state: "detached" });
    assert.deepEqual(await page.locator(`#team-${team} .team-members li > span`).allTextContents(), ["João (agent)"]);
    await page.focus(`#team-name-${team}`);
    await page.fill(`#team-name-${team}`, "Vendas Lisboa");
    await page.keyboard.press("Enter");
    await page.locator(".teams h3", { hasText: "Vendas Lisboa" }).waitFor();
    // On a phone: nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "41-phone-teams");
    await page.setViewportSize({ width: 1280, height: 860 });
    // The inbox filters by team.
    await page.goto(BASE + "/inbox");
    await page.selectOption("#team", { label: "Vendas Lisboa" });
    await page.click(".filters button[type=submit]");
    await page.waitForURL((url) => url.pathname === "/inbox" && url.searchParams.get("team") === team);
    // Without a script the forms work the same.
    const plain = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 390, height: 844 } });
    const noscript = await plain.newPage();
    await noscript.goto(BASE + "/sign-in");
    await noscript.fill("#email", "marta@casanube.example");
    await noscript.fill("#password", "correct horse battery");
    await noscript.click("button[type=submit]");
    await noscript.waitForURL("**/inbox");
    await noscript.goto(BASE + "/teams");
    await noscript.fill("#new-team-name", "Suporte");
    await noscript.check("#new-team label:has-text('João') input");
    await noscript.click("#new-team button[type=submit]");
    await noscript.locator(".teams h3", { hasText: "Suporte" }).waitFor();
    await shot(noscript, "42-phone-teams-without-script");
    await plain.close();
  });

  await as("a new conversation from a template, and the 24-hour window", async () => {
    await ask({ ask: "templates_on" });
    await page.goto(BASE + "/inbox");
    await page.click("text=New conversation");
    await page.waitForURL("**/inbox/new");
    // Choosing the channel and the template goes on by itself (and by its button without a script).
    await page.selectOption("#channel", { label: "Casa Nube" });
    await page.waitForURL(/\/inbox\/new\?channel=/);
    await page.selectOption("#template", { label: "coupon_expiration_reminder_number_vars (en)" });
    await page.waitForURL(/template=coupon_expiration_reminder_number_vars/);
    assert.match(await page.textContent(".template-preview"), /Act fast, \{\{1\}\}!/);
    assert.deepEqual(await page.$$eval(".send-template .field label", (ls) => ls.map((l) => l.textContent.trim())),
      ["Customer's number", "Header {{1}}", "Body {{1}}", "Body {{2}}", "Button 1 (the end of its link)"]);
    // A number without its country code is refused as the API refuses it, what was typed kept.
    await page.fill("#to", "0912 345 678");
    await page.fill("#param-0", "Ana");
    await page.fill("#param-1", "SUMMER20");
    await page.fill("#param-2", "10");
    await page.fill("#param-3", "summer20");
    await page.click(".send-template button[type=submit]");
    await page.waitForSelector("#to-error");
    assert.match(await page.textContent("#to-error"), /country code/);
    assert.equal(await page.inputValue("#param-1"), "SUMMER20");
    assert.equal(await page.getAttribute("#to", "aria-invalid"), "true");
    await shot(page, "43-new-conversation-refused");
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "44-phone-new-conversation");
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.fill("#to", "+351 912 000 111");
    await page.click(".send-template button[type=submit]");
    await page.waitForURL(/\/inbox\/[0-9a-f-]{36}$/);
    const started = page.url();
    // The customer has not written: the window is closed, and only templates are offered.
    assert.match(await page.textContent("#window"), /Closed: the customer has not written yet/);
    assert.equal(await page.locator("#text").count(), 0, "no text box");
    assert.match(await page.textContent(".messages"), /Act fast, Ana!/);
    await shot(page, "45-window-closed");
    const sent = await ask({ ask: "template_sends" });
    assert.deepEqual(sent.to.filter((to) => to === "351912000111").length, 1);
    // From the keyboard: choose a template, go on with Enter, fill it in and send with Enter.
    await page.focus("#template");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.inputValue("#template"), "coupon_expiration_reminder_number_vars:en");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await page.waitForURL(/template=coupon/);
    await page.fill("#param-0", "Ana");
    await page.fill("#param-1", "AUTUMN5");
    await page.fill("#param-2", "5");
    await page.fill("#param-3", "autumn5");
    await page.keyboard.press("Enter");
    await page.waitForURL(started);
    await page.locator(".messages", { hasText: "AUTUMN5" }).waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "46-phone-window-closed");
    await page.setViewportSize({ width: 1280, height: 860 });
    // The customer answers: the open page follows, the window opens and the reply box is back.
    await page.waitForSelector("#live[data-state=live]", { timeout: 5000 });
    await ask({ ask: "meta_text", id: "wamid.IN.T1", from: "351912000111", name: "Ana", text: "Obrigada! Ainda vale?" });
    await page.waitForSelector("#window.window-open", { timeout: 10000 });
    await page.waitForSelector("#text");
    // Where the customer wrote today, the window shows the time left, and the reply box is there.
    await page.goto(conversation);
    assert.match(await page.textContent("#window"), /Open: 2[34] h( \d+ min)? left \(until .+\); after that, only templates/);
    assert.equal(await page.locator("#text").count(), 1);
    await shot(page, "47-window-open");
  });

  await as("knowledge gaps: a person's reply proposed, edited, approved and found in the agent's knowledge", async () => {
    // A question the documents do not answer reaches a person.
    await page.goto(BASE + "/inbox");
    await page.waitForSelector("#live[data-state=live]", { timeout: 5000 });
    await ask({ ask: "meta_text", id: "wamid.IN.G1", from: "351912000333", name: "Helena Prado", text: "Do you donate leftover bread to charity?" });
    await page.locator("#conversations .conversation", { hasText: "Helena Prado" }).first().waitFor({ timeout: 5000 });
    await page.locator("#conversations .conversation", { hasText: "Helena Prado" }).first().locator("a").first().click();
    await page.waitForSelector(".thread-head .badge.status-escalated", { timeout: 10000 });
    await page.fill("#text", "Hi Helena! Yes: unsold bread goes to the Refood charity every evening at 20:00.");
    await page.press("#text", "Enter");
    const reply = page.locator(".message.outbound", { hasText: "Refood" });
    await reply.waitFor();
    // One click proposes it; an author lands on the proposal to edit it.
    await reply.locator("button:has-text('Propose as FAQ')").click();
    await page.waitForURL(/\/knowledge-gaps#p-/);
    const id = new URL(page.url()).hash.slice(1);
    const card = page.locator(`#${id}`);
    assert.equal(await card.locator("input[name=question]").inputValue(), "Do you donate leftover bread to charity?");
    assert.match(await card.locator("textarea[name=answer]").inputValue(), /^Hi Helena! Yes: unsold bread goes to the Refood charity/);
    assert.equal(await card.locator("select[name=agent]").inputValue(), "demo");
    // The group it came from says who asked, how often, and that an entry is proposed.
    const group = page.locator(".gap", { hasText: "Do you donate leftover bread to charity?" });
    assert.match(await group.locator(".gap-counts").textContent(), /1\s*time/);
    assert.match(await group.locator(".trend").textContent(), /1 in the last 7 days/);
    assert.equal(await group.locator("svg.weekly rect").count(), 8);
    assert.match(await group.locator(".faq-state").textContent(), /FAQ entry proposed/);
    await shot(page, "48-knowledge-gaps-proposed");
    // Written for every customer, then approved.
    await card.locator("textarea[name=answer]").fill("Yes: unsold bread goes to the Refood charity every evening at 20:00.");
    await card.locator("button:has-text('Approve and add to knowledge')").click();
    await page.waitForURL(/\/knowledge-gaps#p-/);
    const approved = page.locator(`#approved #${id}`);
    await approved.waitFor();
    assert.equal(await approved.locator(".faq-answer").textContent(), "Yes: unsold bread goes to the Refood charity every evening at 20:00.");
    assert.equal(await page.locator(`#proposed #${id}`).count(), 0);
    assert.match(await page.locator(".gap", { hasText: "Do you donate leftover bread to charity?" }).locator(".faq-state").textContent(), /approved/);
    await shot(page, "49-knowledge-gaps-approved");
    // On a phone the page fits the width.
    await page.setViewportSize({ width: 390, height: 844 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
    await shot(page, "50-phone-knowledge-gaps");
    await page.setViewportSize({ width: 1280, height: 860 });
    // It is a document of the agent's knowledge, and retrieval finds it.
    await approved.locator("a[href='/agents/demo']").click();
    await page.waitForURL("**/agents/demo");
    await page.waitForSelector("#documents >> text=approved-answers.md");
    await page.fill("#search-q", "What happens to the bread you do not sell?");
    await page.click("#search button[type=submit]");
    await page.waitForSelector("#passages li.passage");
    assert.match(await page.textContent("#passages"), /Refood/);
    await shot(page, "51-agent-approved-answers");
    // Back in the conversation, the reply says its entry is approved.
    await page.goBack();
    await page.goto(BASE + "/inbox");
    await page.locator("#conversations .conversation", { hasText: "Helena Prado" }).first().locator("a").first().click();
    await page.waitForSelector(".message.outbound .faq-state >> text=FAQ approved");
    await shot(page, "52-conversation-faq-approved");
  });

  const unexpected = problems.filter((p) => !/status of (40[134]|422)/.test(p));
  assert.deepEqual(unexpected, [], "no script errors in the pages");
  process.stdout.write("DONE\n");
  await browser.close();
  process.exit(0);
} catch (e) {
  process.stdout.write(`FAILED at "${step}": ${e.stack || e}\n`);
  if (problems.length) process.stdout.write(`page errors: ${problems.join("\n")}\n`);
  try {
    await shot(page, "failure");
  } catch {
    // The page itself may be gone.
  }
  await browser.close();
  process.exit(1);
}
