-- Errors say what the upstream said: err.code, err.type, err.param from an
-- OpenAI-shaped error body (read in C: core.upstream_error), err.request_id
-- and resp._llmrelay.request_id from x-request-id. The libcurl executor here;
-- the OpenResty one in spec/gateway_spec.lua.
local llmrelay = require "llmrelay"
local errors = require "llmrelay.errors"
local core = require "llmrelay.core"
local mock = require "spec.support.mock"

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
