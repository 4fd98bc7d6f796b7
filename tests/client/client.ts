// A client of the Palaver API generated from the server's own /api/v1/openapi.json
// (openapi-typescript writes the types to generated/api.d.ts; openapi-fetch is the runtime).
// `tsc` type-checks these calls against that document before they run: a path, parameter or
// body field the document lacks, or types differently, fails the compile. Run by
// tests/it/client.rs with PALAVER_URL and PALAVER_KEY; prints one JSON line of what it saw.
import createClient from "openapi-fetch";
import type { paths } from "./generated/api.js";

// What this script reads of Node's environment (no @types/node for two variables).
declare const process: { env: Record<string, string | undefined> };

const api = createClient<paths>({
  baseUrl: process.env.PALAVER_URL,
  headers: { Authorization: `Bearer ${process.env.PALAVER_KEY}` },
});

/** The answer's body, or a thrown error with the status and the error body. */
function ok<T>(what: string, answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.data === undefined) {
    throw new Error(`${what}: ${answer.response.status} ${JSON.stringify(answer.error)}`);
  }
  return answer.data;
}

const HOURS = "# Opening hours\n\nWe open Monday to Saturday from 8:00 to 18:00. On Sundays we are closed.\n";

const agent = ok(
  "create an agent",
  await api.POST("/api/v1/agents", {
    body: { name: "client-demo", system_prompt: "Answer from the documents only." },
  }),
);

const upload = ok(
  "upload a document",
  await api.POST("/api/v1/agents/{agent}/documents", {
    params: { path: { agent: agent.name } },
    body: { file: "hours.md" },
    // The document says multipart; the form is made here from the file's bytes.
    bodySerializer() {
      const form = new FormData();
      form.append("file", new Blob([HOURS], { type: "text/markdown" }), "hours.md");
      return form;
    },
  }),
);

const documents = ok(
  "list the documents",
  await api.GET("/api/v1/agents/{agent}/documents", { params: { path: { agent: agent.id } } }),
);

const turn = ok(
  "ask the sandbox",
  await api.POST("/api/v1/sandbox/{agent}/messages", {
    params: { path: { agent: agent.name } },
    body: { text: "Are you open on Saturday?", session: "client" },
  }),
);

const inbox = ok(
  "read the inbox",
  await api.GET("/api/v1/conversations", { params: { query: { status: "active" } } }),
);

// An error answer is typed too: the document's error body.
const missing = await api.GET("/api/v1/agents/{agent}", { params: { path: { agent: "nobody" } } });
const code = missing.error?.error.code;

console.log(
  JSON.stringify({
    agent: agent.id,
    upload,
    documents: documents.map((d) => d.id),
    question: turn.question,
    action: turn.action,
    reply: turn.reply,
    sources: turn.sources.length,
    inbox: inbox.length,
    missing: { status: missing.response.status, code },
  }),
);
