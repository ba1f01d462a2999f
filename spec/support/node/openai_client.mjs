// spec/support/node/openai_client.mjs - the official OpenAI Node SDK as a
// client of an OpenAI-compatible server (the mock, the OpenResty gateway).
//
//   node build/node/openai_client.mjs <baseURL> <apiKey> <model> [prompt] [steps]
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
//
// steps "apis" (default "chat": the above) makes instead one
// embeddings.create (input: [prompt, prompt + " 2"]), one plain
// responses.create (input: prompt) and one streamed one (stream: true, the
// response.output_text.delta deltas joined) and prints:
//   {"embeddings":{"ok":true,"object":"list","count":2,"dims":8,"usage":{...},
//                  "request_id":"<x-request-id>"},
//    "responses":{"ok":true,"object":"response","id":"resp_...","status":"completed",
//                 "text":"...","usage":{...},"request_id":"..."},
//    "responses_stream":{"ok":true,"events":["response.created",...],"text":"...",
//                        "status":"completed","usage":{...},"request_id":"..."},
//    "errors":[...]}
// Exits 0 even then, so that the Lua spec can assert on the line; exits 2 on
// bad usage only.
import OpenAI from "openai";

const [baseURL, apiKey, model, prompt = "hello", steps = "chat"] = process.argv.slice(2);
if (!baseURL || !apiKey || !model || (steps !== "chat" && steps !== "apis")) {
  process.stderr.write("usage: node openai_client.mjs <baseURL> <apiKey> <model> [prompt] [chat|apis]\n");
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

// the text of a Response's output_text parts
function outputText(r) {
  const parts = [];
  for (const item of r?.output ?? []) {
    for (const c of item?.content ?? []) {
      if (c?.type === "output_text" && typeof c.text === "string") parts.push(c.text);
    }
  }
  return parts.join("");
}

if (client && steps === "apis") {
  const apis = {
    embeddings: { ok: false, object: null, count: null, dims: null, usage: null, request_id: null },
    responses: { ok: false, object: null, id: null, status: null, text: null, usage: null,
                 request_id: null },
    responses_stream: { ok: false, events: [], text: null, status: null, usage: null,
                        request_id: null },
    errors: out.errors,
  };
  try {
    const r = await client.embeddings.create({ model, input: [prompt, prompt + " 2"] });
    apis.embeddings = {
      ok: true,
      object: r.object ?? null,
      count: Array.isArray(r.data) ? r.data.length : null,
      dims: Array.isArray(r.data?.[0]?.embedding) ? r.data[0].embedding.length : null,
      usage: r.usage ?? null,
      request_id: r._request_id ?? null,
    };
  } catch (err) {
    record("embeddings", err);
  }
  try {
    const r = await client.responses.create({ model, input: prompt });
    apis.responses = {
      ok: true,
      object: r.object ?? null,
      id: r.id ?? null,
      status: r.status ?? null,
      text: outputText(r),
      usage: r.usage ?? null,
      request_id: r._request_id ?? null,
    };
  } catch (err) {
    record("responses", err);
  }
  const deltas = [];
  try {
    const { data: stream, request_id } = await client.responses
      .create({ model, input: prompt, stream: true })
      .withResponse();
    apis.responses_stream.request_id = request_id ?? null;
    for await (const ev of stream) {
      apis.responses_stream.events.push(ev.type);
      if (ev.type === "response.output_text.delta") deltas.push(ev.delta);
      if (ev.response && ev.type !== "response.created") {
        apis.responses_stream.status = ev.response.status ?? null;
        apis.responses_stream.usage = ev.response.usage ?? null;
      }
    }
    apis.responses_stream.ok = true;
  } catch (err) {
    record("responses_stream", err);
  }
  apis.responses_stream.text = deltas.join("");
  process.stdout.write(JSON.stringify(apis) + "\n");
  process.exit(0);
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
