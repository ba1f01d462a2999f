// spec/support/node/openai_client.mjs - the official OpenAI Node SDK as a
// client of an OpenAI-compatible server (the mock, the OpenResty gateway).
//
//   node build/node/openai_client.mjs <baseURL> <apiKey> <model> [prompt]
//
// Runs spec/support/node/install.sh first: it copies this file next to
// build/node/node_modules (an ES module ignores NODE_PATH, so the script must
// sit where `import "openai"` resolves).
//
// Makes one plain chat.completions.create, one streamed one (stream: true,
// content deltas joined) and one models.list(), then prints ONE JSON line:
//   {"plain":{"ok":true,"content":"...","id":"...","usage":{...}},
//    "stream":{"ok":true,"content":"...","chunks":N,"finish_reason":"stop"},
//    "models":["m1",...],
//    "errors":[{"step":"plain","status":500,"name":"InternalServerError","message":"..."}]}
// A failed step has "ok":false (models: null) and adds one entry to errors.
// Exits 0 even then, so that the Lua spec can assert on the line; exits 2 on
// bad usage only.
import OpenAI from "openai";

const [baseURL, apiKey, model, prompt = "hello"] = process.argv.slice(2);
if (!baseURL || !apiKey || !model) {
  process.stderr.write("usage: node openai_client.mjs <baseURL> <apiKey> <model> [prompt]\n");
  process.exit(2);
}

const out = {
  plain: { ok: false, content: null, id: null, usage: null },
  stream: { ok: false, content: null, chunks: 0, finish_reason: null },
  models: null,
  errors: [],
};

function record(step, err) {
  out.errors.push({
    step,
    status: typeof err?.status === "number" ? err.status : null,
    name: err?.constructor?.name ?? err?.name ?? null,
    message: String(err?.message ?? err),
  });
}

const messages = [{ role: "user", content: prompt }];
let client;
try {
  client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 10000 });
} catch (err) {
  record("client", err);
}

if (client) {
  try {
    const r = await client.chat.completions.create({ model, messages });
    out.plain = {
      ok: true,
      content: r.choices?.[0]?.message?.content ?? null,
      id: r.id ?? null,
      usage: r.usage ?? null,
    };
  } catch (err) {
    record("plain", err);
  }

  const parts = [];
  try {
    const stream = await client.chat.completions.create({ model, messages, stream: true });
    for await (const chunk of stream) {
      out.stream.chunks += 1;
      const choice = chunk.choices?.[0];
      if (typeof choice?.delta?.content === "string") parts.push(choice.delta.content);
      if (choice?.finish_reason) out.stream.finish_reason = choice.finish_reason;
    }
    out.stream.ok = true;
  } catch (err) {
    record("stream", err);
  }
  out.stream.content = parts.join("");

  try {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    out.models = ids;
  } catch (err) {
    record("models", err);
  }
}

process.stdout.write(JSON.stringify(out) + "\n");
process.exitCode = 0;
