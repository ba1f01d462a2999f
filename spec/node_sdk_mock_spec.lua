-- The official OpenAI Node SDK (spec/support/node) against the mock server
-- directly: proves the SDK client script that the OpenResty gateway specs use.
-- Run from the repo root: busted --lua=lua5.4 spec/node_sdk_mock_spec.lua
-- Needs node and npm, and the npm registry on the first run (install.sh puts
-- the SDK into build/node).
local cjson = require "cjson"
local mock = require "spec.support.mock"

local q, capture = mock.quote, mock.capture

-- install.sh; returns the client script's path, or nil and why not
local node = require "spec.support.node"
local install, sdk = node.install, node.run

describe("OpenAI Node SDK against mock-llm", function()
  local script, why = install()
  if not script then
    it("needs node, npm and the openai package", function()
      error(why, 0)
    end)
    return
  end

  local m
  after_each(function()
    if m then m:stop() end
    m = nil
  end)
  teardown(mock.stop_all)

  it("makes a plain and a streamed chat completion and lists the models", function()
    m = mock.start{ name = "sdk", models = { "m1", "m2" } }
    local r = sdk(script, m.url, "sk-test", "m1", "hi there")
    assert.same({}, r.errors)
    assert.is_true(r.plain.ok)
    assert.equal("echo: hi there", r.plain.content)
    assert.matches("^chatcmpl%-sdk%-%d+$", r.plain.id)
    assert.is_true(r.plain.usage.prompt_tokens >= 1)
    assert.equal(r.plain.usage.prompt_tokens + r.plain.usage.completion_tokens,
      r.plain.usage.total_tokens)
    assert.is_true(r.stream.ok)
    assert.equal("echo: hi there", r.stream.content)
    assert.is_true(r.stream.chunks >= 2)
    assert.equal("stop", r.stream.finish_reason)
    assert.same({ "m1", "m2" }, r.models)
    local st = m:stats()
    assert.equal(2, st.requests)
    assert.equal(1, st.streams)
    assert.equal(2, st.status["200"])
  end)

  it("reports API errors with their status and exits 0 (no retries)", function()
    m = mock.start{ name = "sdkfail", fail_rate = 1, fail_status = 503 }
    local r = sdk(script, m.url, "sk-test", "m1")
    assert.is_false(r.plain.ok)
    assert.is_false(r.stream.ok)
    assert.equal(2, #r.errors)
    assert.equal("plain", r.errors[1].step)
    assert.equal(503, r.errors[1].status)
    assert.equal("stream", r.errors[2].step)
    assert.equal(503, r.errors[2].status)
    -- maxRetries: 0: one request per call
    assert.equal(2, m:stats().requests)
  end)

  it("reports a refused connection without a status", function()
    local port = mock.free_port()
    local r = sdk(script, "http://127.0.0.1:" .. port .. "/v1", "sk-test", "m1")
    assert.is_false(r.plain.ok)
    assert.is_false(r.stream.ok)
    assert.equal(cjson.null, r.models)
    assert.equal(3, #r.errors)
    for _, e in ipairs(r.errors) do
      assert.equal(cjson.null, e.status)
      assert.equal("APIConnectionError", e.name)
    end
  end)
end)
