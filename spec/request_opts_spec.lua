-- A request's own headers (opts.headers) and endpoint restriction
-- (opts.endpoints) on chat_completion, chat, stream and batch, with both executors:
-- libcurl here, cosockets in nginx (the same scenario, run in a handler).
-- The mock's --auth-header/--auth-key answer 401 unless a header holds an
-- exact value (and echo what came): that is how a spec sees a header arrive.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local load = require "spec.support.load"
local cjson = require "cjson"

local TRACE = "trace-abc-123"
local WRONG_TOKEN = "wrong-session-token-0123456789"

-- Runs in busted (libcurl) and in nginx (cosockets): returns what happened,
-- as plain data. U: the mocks' URLs.
local SCENARIO = [[
local llmrelay, U = ...
local out = {}
local function msgs(text) return { { role = "user", content = text or "hi" } } end
local function req(model) return { model = model or "m", messages = msgs() } end
local T = { connect = 2, first_byte = 10, total = 20 }
-- the endpoint's own X-Trace is wrong: the request's replaces it
local trace = llmrelay.new { timeout = T, retry = { max_attempts = 1 },
  endpoints = { { name = "trace", base_url = U.trace, headers = { ["X-Trace"] = "endpoint-value" } } } }
local resp, err = trace:chat_completion(req(), { headers = { ["X-Trace"] = TRACE } })
out.with_header = resp and "ok" or tostring(err)
resp, err = trace:chat_completion(req())
out.without_header = resp and "ok" or err.status
-- every attempt carries them: the first answers 500, the retry must pass the check too
local retry = llmrelay.new { timeout = T, retry = { max_attempts = 2, base_delay = 0.01 },
  endpoints = { { name = "retry", base_url = U.retry } } }
resp, err = retry:chat_completion(req(), { headers = { ["X-Trace"] = TRACE } })
out.retried = resp and resp._llmrelay.attempts or tostring(err)
local text
text, err = trace:chat("hi", { headers = { ["x-trace"] = TRACE } })
out.chat = text and "ok" or tostring(err)
local parts = {}
for chunk, serr in trace:stream(req(), { headers = { ["X-Trace"] = TRACE } }) do
  if serr then parts[#parts + 1] = "error: " .. tostring(serr) break end
  if chunk then parts[#parts + 1] = "chunk" end
end
out.stream = parts
-- a credential-looking header: its value never shows in an error
local tok = llmrelay.new { timeout = T, retry = { max_attempts = 1 },
  endpoints = { { name = "tok", base_url = U.tok } } }
resp, err = tok:chat_completion(req(), { headers = { ["X-Session-Token"] = WRONG_TOKEN } })
out.tok_status = err and err.status
out.tok_error = err and tostring(err)
local st = tok:stream(req(), { headers = { ["X-Session-Token"] = WRONG_TOKEN } })
local _, serr = st:next()
out.tok_stream_error = serr and tostring(serr)
-- only the named endpoints, and failover stays within them
local three = llmrelay.new { timeout = T, strategy = "round_robin",
  endpoints = { { name = "a", base_url = U.a }, { name = "b", base_url = U.b }, { name = "c", base_url = U.c } } }
out.only_b = 0
for _ = 1, 4 do
  resp = three:chat_completion(req(), { endpoints = { "b" } })
  if resp and resp._llmrelay.endpoint == "b" then out.only_b = out.only_b + 1 end
end
local fo = llmrelay.new { timeout = T, strategy = "priority", retry = { max_attempts = 3, base_delay = 0.01 },
  breaker = { failure_threshold = 10 },
  endpoints = { { name = "x", base_url = U.x }, { name = "a", base_url = U.a }, { name = "c", base_url = U.c } } }
resp, err = fo:chat_completion(req(), { endpoints = { "x", "c" } })
out.failover = resp and resp._llmrelay.endpoint or tostring(err)
-- the restriction and the model filter leave nothing: fails at once
local mix = llmrelay.new { timeout = T,
  endpoints = { { name = "m1only", base_url = U.a, models = { "m1" } }, { name = "any", base_url = U.c } } }
resp, err = mix:chat_completion(req("zzz"), { endpoints = { "m1only" } })
out.empty = err and { kind = err.kind, attempts = err.attempts, message = err.message }
resp = mix:chat_completion(req("m1"), { endpoints = { "m1only" } })
out.m1 = resp and resp._llmrelay.endpoint
return out
]]

local function scenario_source()
  return ("local TRACE, WRONG_TOKEN = %q, %q\n"):format(TRACE, WRONG_TOKEN) .. SCENARIO
end

local mocks
local function start_mocks()
  mocks = {
    trace = mock.start { name = "trace", auth_header = "X-Trace", auth_key = TRACE },
    retry = mock.start { name = "retry", auth_header = "X-Trace", auth_key = TRACE, fail_first = 1 },
    tok = mock.start { name = "tok", auth_header = "X-Session-Token", auth_key = "the-right-session-token-0123" },
    a = mock.start { name = "a" }, b = mock.start { name = "b" }, c = mock.start { name = "c" },
    x = mock.start { name = "x", fail_rate = 1 },
  }
  local U = {}
  for k, m in pairs(mocks) do U[k] = m.url end
  return U
end

local function check(out)
  assert.equal("ok", out.with_header)
  assert.equal(401, out.without_header)
  assert.equal(2, out.retried)
  assert.equal(0, mocks.retry:stats().auth_failures)
  assert.equal("ok", out.chat)
  assert.same({ "chunk" }, { out.stream[1] }, table.concat(out.stream, "\n"))
  assert.equal(401, out.tok_status)
  for _, e in ipairs { out.tok_error, out.tok_stream_error } do
    assert.truthy(e:find("Incorrect API key provided", 1, true), e)
    assert.falsy(e:find(WRONG_TOKEN, 1, true), e)
    assert.truthy(e:find("[REDACTED]", 1, true), e)
  end
  assert.equal(4, out.only_b)
  assert.equal(4, mocks.b:stats().requests)
  assert.equal("c", out.failover)
  assert.equal(1, mocks.a:stats().requests) -- only the m1 request below: never one restricted elsewhere
  assert.equal(1, mocks.c:stats().requests)
  assert.truthy(mocks.x:stats().requests >= 1)
  assert.equal("invalid_request", out.empty.kind)
  assert.equal(0, out.empty.attempts)
  assert.truthy(out.empty.message:find("opts.endpoints", 1, true), out.empty.message)
  assert.equal("m1only", out.m1)
end

describe("opts.headers and opts.endpoints", function()
  after_each(function() mock.stop_all() end)

  it("libcurl: headers reach the server on every call, secrets are scrubbed, endpoints restrict", function()
    local U = start_mocks()
    local run = assert((loadstring or _G.load)(scenario_source()))
    check(run(llmrelay, U))
  end)

  it("refuses what the pool owns, bad names and values, unknown endpoints, with the field named", function()
    local m = mock.start { name = "one" }
    local c = llmrelay.new { endpoints = { { name = "one", base_url = m.url } } }
    local r = { messages = { { role = "user", content = "x" } } }
    local function refuses(opts, text, fn)
      local ok, e = pcall(function()
        if fn == "stream" then return c:stream(r, opts) end
        if fn == "chat" then return c:chat("x", opts) end
        return c:chat_completion(r, opts)
      end)
      assert.is_false(ok)
      assert.truthy(tostring(e):find(text, 1, true), tostring(e))
      assert.falsy(tostring(e):find("s3cr3t", 1, true), tostring(e))
    end
    for _, name in ipairs { "Authorization", "api-key", "Host", "Content-Length", "content-type",
                            "Transfer-Encoding" } do
      refuses({ headers = { [name] = "s3cr3t-value-0123456789" } }, "opts.headers[\"" .. name .. "\"] is set by llmrelay")
    end
    refuses({ headers = { ["X-A"] = "s3cr3t\r\nX-B: y" } }, "opts.headers[\"X-A\"] must not contain CR or LF")
    refuses({ headers = { ["X-A"] = "s3cr3t\n" } }, "must not contain CR or LF", "stream")
    refuses({ headers = { ["X-A"] = "s3cr3t\0" } }, "opts.headers[\"X-A\"] must not contain control characters")
    refuses({ headers = { ["X A"] = "v" } }, "opts.headers[\"X A\"] is not a valid header name", "chat")
    refuses({ headers = { ["X-A"] = 1 } }, "opts.headers[\"X-A\"] must be a string (got number)")
    refuses({ headers = { ["X-A"] = "1", ["x-a"] = "2" } }, "(header names are case-insensitive)")
    refuses({ headers = { [1] = "v" } }, "opts.headers must map header names to values")
    refuses({ headers = "X-A: v" }, "opts.headers must be a table")
    refuses({ headers = { ["X-Api-Token"] = "s3cr3t" } }, "opts.headers[\"X-Api-Token\"] is too short to keep secret")
    refuses({ endpoints = { "one", "nope" } }, "opts.endpoints[2] names no endpoint: \"nope\"")
    refuses({ endpoints = {} }, "opts.endpoints must be a non-empty array of endpoint names", "stream")
    refuses({ endpoints = "one" }, "opts.endpoints must be a non-empty array of endpoint names", "chat")
    refuses({ endpoints = { 1 } }, "opts.endpoints[1] must be an endpoint name (got number)")
    local ok, e = pcall(c.batch, c, { r }, { headers = { ["X-A"] = "s3cr3t\r\n" } })
    assert.is_false(ok)
    assert.truthy(tostring(e):find("batch: opts.headers[\"X-A\"] must not contain CR or LF", 1, true), tostring(e))
    ok, e = pcall(c.batch, c, { r }, { endpoints = { "nope" } })
    assert.is_false(ok)
    assert.truthy(tostring(e):find("batch: opts.endpoints[1] names no endpoint: \"nope\"", 1, true), tostring(e))
    -- the error points at the caller's line
    ok, e = pcall(function() c:chat_completion(r, { endpoints = { "nope" } }) end)
    assert.truthy(tostring(e):find("request_opts_spec.lua", 1, true), tostring(e))
    assert.equal(0, m:stats().requests)
  end)

  it("batch: every request carries the headers and keeps to the endpoints; credentials scrubbed", function()
    local trace = mock.start { name = "trace", auth_header = "X-Trace", auth_key = TRACE }
    local other = mock.start { name = "other" }
    local tok = mock.start { name = "tok", auth_header = "X-Session-Token", auth_key = "the-right-session-token-0123" }
    local c = llmrelay.new { strategy = "round_robin", retry = { max_attempts = 1 }, endpoints = {
      { name = "trace", base_url = trace.url }, { name = "other", base_url = other.url },
      { name = "tok", base_url = tok.url } } }
    local reqs = {}
    for i = 1, 6 do reqs[i] = { model = "m", messages = { { role = "user", content = "q" .. i } } } end
    local results, summary = c:batch(reqs, { concurrency = 3, headers = { ["X-Trace"] = TRACE },
                                             endpoints = { "trace" } })
    assert.equal(6, summary.ok)
    for i = 1, 6 do assert.equal("trace", results[i].response._llmrelay.endpoint) end
    assert.equal(6, trace:stats().requests)
    assert.equal(0, trace:stats().auth_failures)
    assert.equal(0, other:stats().requests)
    -- without them the same batch goes round the pool, and trace refuses what it gets
    results, summary = c:batch(reqs, { concurrency = 3 })
    assert.truthy(other:stats().requests > 0)
    assert.truthy(trace:stats().auth_failures > 0)
    assert.truthy(summary.failed > 0)
    -- a credential header of a batch never shows in its errors
    results, summary = c:batch({ reqs[1], reqs[2] }, { endpoints = { "tok" },
                                                       headers = { ["X-Session-Token"] = WRONG_TOKEN } })
    assert.equal(2, summary.failed)
    for i = 1, 2 do
      local e = tostring(results[i].error)
      assert.equal(401, results[i].error.status)
      assert.truthy(e:find("Incorrect API key provided", 1, true), e)
      assert.falsy(e:find(WRONG_TOKEN, 1, true), e)
      assert.truthy(e:find("[REDACTED]", 1, true), e)
    end
    c:close()
  end)
end)

describe("opts.headers and opts.endpoints under OpenResty", function()
  if not nginx.required(it, "request_opts spec") then return end
  local g

  teardown(function()
    if g then g:stop() end
    mock.stop_all()
  end)

  it("cosockets: headers reach the server on every call, secrets are scrubbed, endpoints restrict", function()
    local U = start_mocks()
    g = nginx.start {
      init = ("scenario_source, U = %q, %s"):format(scenario_source(),
        "{" .. (function()
          local t = {}
          for k, v in pairs(U) do t[#t + 1] = ("%s = %q"):format(k, v) end
          return table.concat(t, ", ")
        end)() .. "}"),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT;
          location = /run {
            content_by_lua_block {
              local run = assert(loadstring(scenario_source))
              ngx.say(require("cjson").encode(run(require "llmrelay", U)))
            }
          }
        }
      ]],
    }
    local status, body = load.request(g.base .. "/run", { timeout = 60 })
    assert.equal(200, status, tostring(body) .. g:error_log())
    check(cjson.decode(body))
  end)
end)
