-- Endpoints beyond chat (issue 17): client:embeddings, :responses, :completions and
-- :request(api, ...) through a pool whose first endpoint refuses connections, on both
-- executors; each api's path per endpoint (derived, Azure-style, overridden), the
-- endpoints[i].apis restriction, each api's request check and token estimate, and the
-- cost of each api's usage. Streams of Responses and completions: further below.
local llmrelay = require "llmrelay"
local core = require "llmrelay.core"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local cjson = require "cjson"

local PRICES = { ["*"] = { input = 1, output = 2, cached_input = 0.5 } }

local function pool(m, extra)
  local dead = { name = "dead", base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1" }
  local good = { name = "good", base_url = m.url, prices = PRICES }
  for k, v in pairs(extra or {}) do good[k] = v end
  return { strategy = "priority", endpoints = { dead, good }, retry = { max_attempts = 3, base_delay = 0.01 } }
end

describe("core.check_request and core.estimate_tokens per api", function()
  it("asks each api for its own field", function()
    assert.is_true(core.check_request('{"input":"x"}', "embeddings"))
    assert.is_true(core.check_request('{"input":[{"role":"user","content":"x"}]}', "responses"))
    assert.is_true(core.check_request('{"prompt":"x"}', "completions"))
    assert.is_true(core.check_request('{"messages":[{}]}'))
    local ok, why = core.check_request('{"messages":[{}]}', "embeddings")
    assert.is_nil(ok)
    assert.matches("input is required", why)
    ok, why = core.check_request('{"input":"x"}', "completions")
    assert.is_nil(ok)
    assert.matches("prompt is required", why)
    ok, why = core.check_request('{"input":"x"}', "chat")
    assert.is_nil(ok)
    assert.matches("messages is required", why)
    assert.has_error(function() core.check_request("{}", "images") end)
  end)

  it("estimates each api's output tokens", function()
    local b = '{"input":"x","max_tokens":100,"max_output_tokens":40}'
    assert.equal(#b // 4, core.estimate_tokens(b, "embeddings"))
    assert.equal(#b // 4 + 40, core.estimate_tokens(b, "responses"))
    assert.equal(#b // 4 + 100, core.estimate_tokens(b, "completions"))
    assert.equal(#b // 4 + 100, core.estimate_tokens(b))
  end)
end)

describe("client apis (libcurl executor)", function()
  after_each(function() mock.stop_all() end)

  it("embeddings, responses and completions fail over past a refused endpoint with the right object and cost",
     function()
    local m = mock.start { name = "a" }
    local c = llmrelay.new(pool(m))
    local e = assert(c:embeddings { model = "emb", input = { "one two", "three" } })
    assert.equal("list", e.object)
    assert.equal(2, #e.data)
    assert.equal("embedding", e.data[1].object)
    assert.equal("good", e._llmrelay.endpoint)
    assert.equal(2, e._llmrelay.attempts)
    assert.near(e.usage.prompt_tokens * 1 / 1e6, e._llmrelay.cost, 1e-12)
    local r = assert(c:responses { model = "m", input = "hello there" })
    assert.equal("response", r.object)
    assert.equal("completed", r.status)
    assert.equal("echo: hello there", r.output[1].content[1].text)
    assert.near((r.usage.input_tokens * 1 + r.usage.output_tokens * 2) / 1e6, r._llmrelay.cost, 1e-12)
    assert.equal("a-2", r._llmrelay.request_id)
    local t = assert(c:completions { model = "m", prompt = "say this" })
    assert.equal("text_completion", t.object)
    assert.equal("echo: say this", t.choices[1].text)
    local q = assert(c:request("embeddings", { model = "emb", input = "x" }))
    assert.equal("list", q.object)
    local paths = m:stats().paths
    assert.equal(2, paths["/v1/embeddings"])
    assert.equal(1, paths["/v1/responses"])
    assert.equal(1, paths["/v1/completions"])
    local cost = c:status()[2].cost
    assert.is_true(cost > 0)
    c:close()
  end)

  it("derives each api's path from an Azure-style path, and takes overrides", function()
    local m = mock.start { name = "az" }
    local base = m.url:gsub("/v1$", "")
    local c = llmrelay.new { endpoints = { { base_url = base, path = "/openai/deployments/{model}/chat/completions",
                                            query = { ["api-version"] = "2024-10-21" } } } }
    assert(c:embeddings { model = "text-emb", input = "x" })
    assert.equal("/openai/deployments/text-emb/embeddings?api-version=2024-10-21", m:stats().last_target)
    assert(c:responses { model = "gpt", input = "x" })
    assert.equal("/openai/deployments/gpt/responses?api-version=2024-10-21", m:stats().last_target)
    local o = llmrelay.new { endpoints = { { base_url = base, path = "/custom/chat",
                                            paths = { embeddings = "/vec/{model}/embeddings" } } } }
    assert(o:embeddings { model = "e1", input = "x" })
    assert.equal("/vec/e1/embeddings", m:stats().last_target)
    assert(o:completions { model = "m", prompt = "x" }) -- a path not ending in /chat/completions: OpenAI's layout
    assert.equal("/completions", m:stats().last_target)
    assert.has_error(function() llmrelay.new { endpoints = { { base_url = base, paths = { chat = "/x" } } } } end)
    assert.has_error(function() llmrelay.new { endpoints = { { base_url = base, paths = { embeddings = "x" } } } } end)
  end)

  it("sends each api only to the endpoints serving it, and fails at once when none does", function()
    local chat_only = mock.start { name = "chat" }
    local all = mock.start { name = "all" }
    local c = llmrelay.new { strategy = "priority", endpoints = {
      { name = "chat", base_url = chat_only.url, apis = { "chat" } }, { name = "all", base_url = all.url } } }
    local e = assert(c:embeddings { model = "e", input = "x" })
    assert.equal("all", e._llmrelay.endpoint)
    assert.equal(1, e._llmrelay.attempts)
    assert(c:chat_completion { model = "m", messages = { { role = "user", content = "x" } } })
    assert.equal(1, chat_only:stats().requests)
    local only = llmrelay.new { endpoints = { { base_url = chat_only.url, apis = { "chat", "completions" } } } }
    local r, err = only:responses { model = "m", input = "x" }
    assert.is_nil(r)
    assert.equal("invalid_request", err.kind)
    assert.equal(0, err.attempts)
    assert.matches("no endpoint serves the responses api", err.message)
    assert.equal(1, chat_only:stats().requests)
    assert.has_error(function() llmrelay.new { endpoints = { { base_url = all.url, apis = { "images" } } } } end)
    assert.has_error(function() llmrelay.new { endpoints = { { base_url = all.url, apis = {} } } } end)
  end)

  it("raises on a request missing its api's field or an unknown api", function()
    local m = mock.start { name = "x" }
    local c = llmrelay.new { endpoints = { { base_url = m.url } } }
    assert.has_error(function() c:embeddings { model = "e" } end,
                     "embeddings: request.input must be a string or an array of strings or tokens (got nil)")
    assert.has_error(function() c:completions { model = "e", input = "x" } end)
    assert.has_error(function() c:request("images", { model = "e" }) end)
    local r, err = c:embeddings { model = "e", input = "" }
    assert.is_nil(r)
    assert.equal("invalid_request", err.kind)
    assert.equal(0, m:stats().requests)
  end)
end)

local function read_stream(st)
  local types = {}
  while true do
    local ev, err = st:next()
    if not ev then return types, err end
    types[#types + 1] = ev.type or ev.object
  end
end

describe("Responses and completions streams (libcurl executor)", function()
  after_each(function() mock.stop_all() end)

  it("a streamed Responses call fails over past a refused endpoint and yields typed events", function()
    local m = mock.start { name = "s" }
    local c = llmrelay.new(pool(m))
    local deltas = {}
    local st = c:stream({ model = "m", input = "one two three" },
                        { api = "responses", on_delta = function(t) deltas[#deltas + 1] = t end })
    local types, err = read_stream(st)
    assert.is_nil(err)
    assert.equal("response.created", types[1])
    assert.equal("response.completed", types[#types])
    assert.equal("echo: one two three", st:text())
    assert.equal(st:text(), table.concat(deltas))
    assert.equal("good", st._llmrelay.endpoint)
    assert.is_table(st.usage)
    assert.near((st.usage.input_tokens + 2 * st.usage.output_tokens) / 1e6, st._llmrelay.cost, 1e-12)
    assert.equal(1, m:stats().paths["/v1/responses"])
    local ct = c:stream({ model = "m", prompt = "a b" }, { api = "completions" })
    types, err = read_stream(ct)
    assert.is_nil(err)
    assert.equal("text_completion", types[1])
    assert.equal("echo: a b", ct:text())
    assert.is_true(ct._llmrelay.cost > 0)
    assert.has_error(function() c:stream({ model = "m", input = "x" }, { api = "embeddings" }) end)
    assert.has_error(function() c:stream({ model = "m" }, { api = "responses" }) end)
  end)

  local function one_shot(flags)
    local m = mock.start(flags)
    local c = llmrelay.new { endpoints = { { base_url = m.url } }, retry = { max_attempts = 1 } }
    local st = c:stream({ model = "m", input = "one two three" }, { api = "responses" })
    local types, err = read_stream(st)
    return types, err, st
  end

  it("a cut before response.completed is stream_interrupted with the text so far", function()
    local types, err = one_shot { name = "cut", stream_cut_after = 2 }
    assert.equal("stream_interrupted", err.kind)
    assert.equal("echo: ", err.partial)
    assert.is_nil(table.concat(types, ","):find("response.completed", 1, true))
    types, err = one_shot { name = "end", stream_end_after = 3 } -- a clean close, no terminal event
    assert.equal("stream_interrupted", err.kind)
    assert.is_string(err.partial)
  end)

  it("response.failed, response.incomplete and error events end it with an error naming them", function()
    local _, err = one_shot { name = "failed", responses_status = "failed" }
    assert.equal("stream_interrupted", err.kind)
    assert.matches("response.failed", err.message, 1, true)
    assert.equal("response.failed", err.event)
    assert.equal("server_error", err.code)
    assert.equal("echo: one two three", err.partial)
    _, err = one_shot { name = "incomplete", responses_status = "incomplete" }
    assert.equal("stream_interrupted", err.kind)
    assert.matches("response.incomplete", err.message, 1, true)
    assert.equal("response.incomplete", err.event)
    assert.equal("max_output_tokens", err.code)
    _, err = one_shot { name = "error", stream_error_after = 2 }
    assert.equal("stream_interrupted", err.kind)
    assert.matches("error event", err.message, 1, true)
    assert.equal("error", err.event)
    assert.equal("server_error", err.code)
  end)
end)

describe("client apis (OpenResty executor)", function()
  if not nginx.required(it, "apis spec (OpenResty)") then return end
  local m, n
  setup(function()
    assert(mock.run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    m = mock.start { name = "r" }
    local cut = mock.start { name = "rc", stream_cut_after = 2 }
    local failed = mock.start { name = "rf", responses_status = "failed" }
    local one = function(url) return { endpoints = { { base_url = url } }, retry = { max_attempts = 1 } } end
    n = nginx.start {
      init = ([[
        local llmrelay = require "llmrelay"
        local cjson = require "cjson"
        client = llmrelay.new(cjson.decode(%q))
        cut = llmrelay.new(cjson.decode(%q))
        failed = llmrelay.new(cjson.decode(%q))
      ]]):format(cjson.encode(pool(m)), cjson.encode(one(cut.url)), cjson.encode(one(failed.url))),
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location = /call { content_by_lua_block {
            local cjson = require "cjson"
            local api = ngx.var.arg_api
            local req = api == "completions" and { model = "m", prompt = "p q" } or { model = "m", input = "in put" }
            local resp, err = client:request(api, req)
            ngx.say(cjson.encode { ok = resp ~= nil, object = resp and resp.object, endpoint = resp and resp._llmrelay.endpoint,
              cost = resp and resp._llmrelay.cost, err = err and tostring(err) })
          } }
          location = /stream { content_by_lua_block {
            local c = ({ client = client, cut = cut, failed = failed })[ngx.var.arg_c]
            local st = c:stream({ model = "m", input = "one two three" }, { api = "responses" })
            local types, err = {}
            while true do
              local ev, e = st:next()
              if not ev then err = e break end
              types[#types + 1] = ev.type
            end
            ngx.say(require("cjson").encode { types = types, text = st:text(), kind = err and err.kind,
              message = err and err.message, partial = err and err.partial, event = err and err.event,
              endpoint = st._llmrelay and st._llmrelay.endpoint, cost = st._llmrelay and st._llmrelay.cost })
          } }
        }
      ]],
    }
  end)
  teardown(function()
    if n then n:stop() end
    mock.stop_all()
  end)

  it("embeddings, responses and completions fail over past a refused endpoint", function()
    for api, object in pairs { embeddings = "list", responses = "response", completions = "text_completion" } do
      local code, body = nginx.curl(n.base .. "/call?api=" .. api, { timeout = 10 })
      assert.equal(200, code, body)
      local r = cjson.decode(body)
      assert.is_true(r.ok, r.err)
      assert.equal(object, r.object)
      assert.equal("good", r.endpoint)
      assert.is_true(r.cost > 0)
    end
    local paths = m:stats().paths
    assert.equal(1, paths["/v1/embeddings"])
    assert.equal(1, paths["/v1/responses"])
    assert.equal(1, paths["/v1/completions"])
  end)

  local function stream(c)
    local code, body = nginx.curl(n.base .. "/stream?c=" .. c, { timeout = 10 })
    assert.equal(200, code, body)
    return cjson.decode(body)
  end

  it("a streamed Responses call fails over past a refused endpoint; cuts and response.failed are errors", function()
    local r = stream("client")
    assert.is_nil(r.kind, r.message)
    assert.equal("response.completed", r.types[#r.types])
    assert.equal("echo: one two three", r.text)
    assert.equal("good", r.endpoint)
    assert.is_true(r.cost > 0)
    r = stream("cut")
    assert.equal("stream_interrupted", r.kind)
    assert.equal("echo: ", r.partial)
    r = stream("failed")
    assert.equal("stream_interrupted", r.kind)
    assert.equal("response.failed", r.event)
    assert.matches("response.failed", r.message, 1, true)
  end)
end)
