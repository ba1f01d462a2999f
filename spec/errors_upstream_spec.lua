-- Errors say what the upstream said: err.code, err.type, err.param from an
-- OpenAI-shaped error body (read in C: core.upstream_error), err.request_id
-- and resp._llmrelay.request_id from x-request-id. The libcurl executor here;
-- the OpenResty one in spec/gateway_spec.lua.
local llmrelay = require "llmrelay"
local errors = require "llmrelay.errors"
local core = require "llmrelay.core"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local load = require "spec.support.load"
local cjson = require "cjson"

local function req(text, model)
  return { model = model or "mock-model", messages = { { role = "user", content = text or "hi" } } }
end

describe("upstream error fields", function()
  after_each(function() mock.stop_all() end)

  it("core.upstream_error reads code, type and param, and nothing else", function()
    local code, t, p = core.upstream_error(
      '{"error":{"message":"m","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}')
    assert.same({ "context_length_exceeded", "invalid_request_error", "messages" }, { code, t, p })
    code, t, p = core.upstream_error('{"error":{"message":"m","type":"server_error","param":null,"code":null}}')
    assert.same({ nil, "server_error", nil }, { code, t, p })
    code = core.upstream_error('{"error":{"code":400,"status":"INVALID_ARGUMENT"}}')
    assert.equal(400, code)
    assert.equal("400", tostring(code))
    code, t = core.upstream_error('{"object":"error","message":"m","type":"BadRequestError","code":400}')
    assert.same({ 400, "BadRequestError" }, { code, t })
    code = core.upstream_error('{"error":{"code":"caf\\u00e9 \\ud83d\\ude00 \\ud800"}}')
    assert.equal("café 😀 \239\191\189", code)
    for _, body in ipairs { "", "null", "{}", '{"error":"no"}', '{"error":{"code":"x"}', "<html>", '{"code":"x"}' } do
      assert.equal(0, select("#", core.upstream_error(body)), body)
    end
    -- bounded: longer than an error body is ever kept
    local long = '{"error":{"code":"c","message":"' .. string.rep("a", 4096) .. '"}}'
    assert.equal(0, select("#", core.upstream_error(long)))
  end)

  it("a 400 with a code: err.code, type, param and request_id, and tostring shows them", function()
    local m = mock.start { name = "a", bad_marker = "HUGE", bad_code = "context_length_exceeded",
                           bad_param = "messages" }
    local c = llmrelay.new { endpoints = { { base_url = m.url, name = "one" } } }
    local resp, err = c:chat_completion(req("a HUGE prompt"))
    assert.is_nil(resp)
    assert.equal("invalid_request", err.kind)
    assert.equal(400, err.status)
    assert.equal("context_length_exceeded", err.code)
    assert.equal("invalid_request_error", err.type)
    assert.equal("messages", err.param)
    assert.equal("a-1", err.request_id)
    assert.equal(1, err.attempts)
    local s = tostring(err)
    assert.truthy(s:find("bad request marker found", 1, true), s)
    assert.truthy(s:find("[code context_length_exceeded]", 1, true), s)
    assert.truthy(s:find("[request a-1]", 1, true), s)
    -- a null code stays nil
    local m2 = mock.start { name = "b", bad_marker = "HUGE", bad_status = 422 }
    local c2 = llmrelay.new { endpoints = { { base_url = m2.url } } }
    resp, err = c2:chat_completion(req("HUGE"))
    assert.equal(422, err.status)
    assert.is_nil(err.code)
    assert.is_nil(err.param)
    assert.equal("invalid_request_error", err.type)
    assert.equal("b-1", err.request_id)
  end)

  it("the request id of the answer that succeeded, and of the last one that failed", function()
    local a = mock.start { name = "a", fail_first = 1, fail_status = 503 }
    local c = llmrelay.new { endpoints = { { base_url = a.url } }, retry = { base_delay = 0.01, max_delay = 0.02 } }
    local resp, err = c:chat_completion(req("hi"))
    assert.is_nil(err)
    assert.equal(2, resp._llmrelay.attempts)
    assert.equal("a-2", resp._llmrelay.request_id)
    -- 404 model not found on every endpoint: kind http, the last endpoint's answer
    local b = mock.start { name = "b", models = { "other" } }
    local d = mock.start { name = "d", models = { "other" } }
    local c2 = llmrelay.new { strategy = "priority",
                              endpoints = { { base_url = b.url, name = "b" }, { base_url = d.url, name = "d" } } }
    resp, err = c2:chat_completion(req("hi", "gpt-x"))
    assert.is_nil(resp)
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.equal("model_not_found", err.code)
    assert.equal("d", err.endpoint)
    assert.equal("d-1", err.request_id)
  end)

  it("streams and batches carry them too", function()
    local m = mock.start { name = "s", bad_marker = "HUGE", bad_code = "context_length_exceeded" }
    local c = llmrelay.new { endpoints = { { base_url = m.url } } }
    local st = c:stream(req("HUGE"))
    local chunk, err = st:next()
    assert.is_nil(chunk)
    assert.equal("context_length_exceeded", err.code)
    assert.equal("s-1", err.request_id)
    local results = c:batch { req("fine"), req("HUGE") }
    assert.is_true(results[1].ok)
    assert.equal("s-2", results[1].response._llmrelay.request_id)
    assert.is_false(results[2].ok)
    assert.equal("context_length_exceeded", results[2].error.code)
    assert.equal("s-3", results[2].error.request_id)
    -- an error event after some chunks: the event's type, the stream's request id
    local e = mock.start { name = "e", stream_error_after = 2 }
    local c2 = llmrelay.new { endpoints = { { base_url = e.url } }, retry = { max_attempts = 1 } }
    local chunks = 0
    for chunk, serr in c2:stream(req("one two three four")) do
      if chunk then
        chunks = chunks + 1
      else
        err = serr
      end
    end
    assert.equal(2, chunks)
    assert.equal("stream_interrupted", err.kind)
    assert.equal("server_error", err.type)
    assert.is_nil(err.code)
    assert.equal("e-1", err.request_id)
  end)

  it("a request id that quotes a key is scrubbed", function()
    local key = "sk-test-0123456789abcdef"
    -- the mock's request ids are <name>-<n>
    local m = mock.start { name = key, bad_marker = "HUGE" }
    local c = llmrelay.new { endpoints = { { base_url = m.url, api_key = key } } }
    local resp, err = c:chat_completion(req("HUGE"))
    assert.is_nil(resp)
    assert.equal("[REDACTED]-1", err.request_id)
    assert.falsy(tostring(err):find(key, 1, true))
    resp = c:chat_completion(req("fine"))
    assert.equal("[REDACTED]-2", resp._llmrelay.request_id)
  end)

  it("errors.new checks the new fields", function()
    local e = errors.new { kind = "http", code = 404, type = "t", param = "p", request_id = "r" }
    assert.equal(404, e.code)
    assert.has_error(function() errors.new { kind = "http", code = {} } end,
                     "errors.new: code must be a string or a number (got table)")
    assert.has_error(function() errors.new { kind = "http", request_id = 1 } end,
                     "errors.new: request_id must be a string (got number)")
  end)
end)

-- In nginx: the OpenResty executor's errors, and the gateway's answers.
describe("upstream error fields under OpenResty", function()
  if not nginx.required(it, "errors_upstream spec") then return end

  local KEY = "sk-upstream-SECRET-0123456789"
  local m, other1, other2, locked, g
  local function post(path, body)
    return load.request(g.base .. path, { method = "POST", body = body,
                                          headers = { "Content-Type: application/json" } })
  end
  local function chat(text, model, extra)
    local t = { model = model or "gpt-x", messages = { { role = "user", content = text } } }
    for k, v in pairs(extra or {}) do t[k] = v end
    return cjson.encode(t)
  end

  setup(function()
    m = mock.start { name = "m", bad_marker = "HUGE", bad_code = "context_length_exceeded", bad_param = "messages" }
    other1 = mock.start { name = "o1", models = { "other" } }
    other2 = mock.start { name = "o2", models = { "other" } }
    locked = mock.start { name = "locked", auth_key = "the-right-key" }
    g = nginx.start {
      init = ([[
        local llmrelay = require "llmrelay"
        local T = { connect = 2, first_byte = 10, total = 20 }
        main = llmrelay.new { timeout = T, retry = { max_attempts = 2 },
          endpoints = { { name = "m", base_url = %q, api_key = %q } } }
        two = llmrelay.new { timeout = T, strategy = "priority",
          endpoints = { { name = "o1", base_url = %q }, { name = "o2", base_url = %q } } }
        locked = llmrelay.new { timeout = T, retry = { max_attempts = 1 },
          endpoints = { { name = "locked", base_url = %q, api_key = %q } } }
        opts = { anonymous = true }
      ]]):format(m.url, KEY, other1.url, other2.url, locked.url, KEY),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT;
          location /main/ { content_by_lua_block { require("llmrelay.resty.gateway").serve(main, opts) } }
          location /two/ { content_by_lua_block { require("llmrelay.resty.gateway").serve(two, opts) } }
          location /locked/ { content_by_lua_block { require("llmrelay.resty.gateway").serve(locked, opts) } }
          location = /direct {
            content_by_lua_block {
              local cjson = require "cjson"
              local resp, err = main:chat_completion { model = "gpt-x", messages = { { role = "user",
                content = ngx.var.arg_text } } }
              if resp then
                ngx.say(cjson.encode { request_id = resp._llmrelay.request_id })
              else
                ngx.say(cjson.encode { kind = err.kind, status = err.status, code = err.code, type = err.type,
                                       param = err.param, request_id = err.request_id, text = tostring(err) })
              end
            }
          }
        }
      ]],
    }
  end)

  teardown(function()
    if g then g:stop() end
    mock.stop_all()
  end)

  it("the OpenResty executor fills err.code, type, param and request_id, and resp._llmrelay.request_id", function()
    local status, body = load.request(g.base .. "/direct?text=HUGE")
    assert.equal(200, status, body .. g:error_log())
    local e = cjson.decode(body)
    assert.equal("invalid_request", e.kind)
    assert.equal(400, e.status)
    assert.equal("context_length_exceeded", e.code)
    assert.equal("invalid_request_error", e.type)
    assert.equal("messages", e.param)
    assert.matches("^m%-%d+$", e.request_id)
    assert.truthy(e.text:find("[code context_length_exceeded]", 1, true), e.text)
    status, body = load.request(g.base .. "/direct?text=fine")
    assert.equal(200, status, body)
    assert.matches("^m%-%d+$", cjson.decode(body).request_id)
  end)

  it("the gateway answers a request's own 400 with the upstream's status, body and x-request-id", function()
    for _, stream in ipairs { false, true } do
      local before = m:stats().requests
      local status, body, h = post("/main/v1/chat/completions", chat("HUGE", nil, { stream = stream }))
      assert.equal(400, status, body)
      assert.equal(1, m:stats().requests - before) -- never retried
      local doc = cjson.decode(body)
      assert.same({ message = "bad request marker found", type = "invalid_request_error", param = "messages",
                    code = "context_length_exceeded" }, doc.error)
      assert.matches("^m%-%d+$", h["x-request-id"])
      assert.equal("m", h["x-llmrelay-endpoint"])
      assert.is_nil(body:find("SECRET", 1, true))
    end
    -- a success carries the upstream's x-request-id too
    local status, body, h = post("/main/v1/chat/completions", chat("fine"))
    assert.equal(200, status, body)
    assert.matches("^m%-%d+$", h["x-request-id"])
  end)

  it("404 model not found on every endpoint: the upstream's 404 and body, not a 502", function()
    local status, body, h = post("/two/v1/chat/completions", chat("hi", "gpt-nope"))
    assert.equal(404, status, body)
    local doc = cjson.decode(body)
    assert.equal("model_not_found", doc.error.code)
    assert.equal("The model `gpt-nope` does not exist", doc.error.message)
    assert.equal("o2-1", h["x-request-id"])
  end)

  it("a 401 of the pool's key stays the gateway's own 502, with the key out and the request id in", function()
    local status, body, h = post("/locked/v1/chat/completions", chat("hi"))
    assert.equal(502, status, body)
    local doc = cjson.decode(body)
    assert.equal("http", doc.error.code)
    assert.is_nil(body:find("SECRET", 1, true), body)
    assert.is_nil(body:find("0123456789", 1, true), body)
    assert.equal("locked-1", h["x-request-id"])
  end)

  it("leaves no Lua error in the error log", function()
    local log = g:error_log()
    assert.is_nil(log:find("[error]", 1, true), log)
    assert.is_nil(log:find("SECRET", 1, true), log)
  end)
end)
