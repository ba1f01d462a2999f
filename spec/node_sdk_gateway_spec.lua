-- The official OpenAI Node SDK (spec/support/node) through the OpenResty
-- gateway (lua/llmrelay/resty/gateway.lua) beyond chat: client.embeddings.
-- create, client.responses.create and client.responses.create({ stream:
-- true }), through a pool whose first endpoint refuses connections and whose
-- second always answers 500 (issue 17).
-- Run from the repo root (make && make LUA=luajit first):
--   busted --lua=lua5.4 spec/node_sdk_gateway_spec.lua
-- Needs nginx + libnginx-mod-http-lua (spec/support/nginx.lua), node + npm
-- (spec/support/node/install.sh).
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local node = require "spec.support.node"

describe("OpenAI Node SDK through the gateway: embeddings and Responses", function()
  if not nginx.required(it, "Node SDK gateway spec") then return end

  local n, mocks, script, why
  setup(function()
    script, why = node.install()
    mocks = {}
    mocks.bad = mock.start{ name = "bad", fail_rate = 1 }
    mocks.h = mock.start{ name = "h", models = { "gpt-x", "emb-x" } }
    local dead = mock.free_port()
    n = nginx.start{
      workers = 2,
      shared_dicts = { llmrelay = "4m" },
      init = ([[
        local llmrelay = require "llmrelay"
        sdk_client = llmrelay.new{ name = "sdk", shared_dict = "llmrelay",
          timeout = { connect = 2, first_byte = 10, total = 20 },
          retry = { max_attempts = 4, base_delay = 0.05 },
          endpoints = {
            { name = "dead", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-dead" },
            { name = "bad", base_url = %q, api_key = "sk-upstream-SECRET-bad" },
            { name = "h", base_url = %q, api_key = "sk-upstream-SECRET-h", models = { "gpt-x", "emb-x" } } } }
      ]]):format(dead, mocks.bad.url, mocks.h.url),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(sdk_client, { keys = { "gw-sdk-key" } })
          } }
        }
      ]],
    }
  end)

  teardown(function()
    if n then n:stop() end
    for _, m in pairs(mocks or {}) do m:stop() end
  end)

  -- the steps' errors but those of `skip`
  local function errors_but(r, skip)
    local left = {}
    for _, e in ipairs(r.errors) do
      if e.step ~= skip then left[#left + 1] = e end
    end
    return left
  end

  local function run(prompt)
    assert(script, "the Node SDK is needed (sh tools/install-deps installs node and npm): " .. tostring(why))
    return node.run(script, n.base .. "/v1", "gw-sdk-key", "gpt-x", prompt, "apis")
  end

  it("embeddings.create and responses.create succeed with the upstream's objects and request ids", function()
    local before = mocks.h:stats().paths
    for i = 1, 2 do
      local prompt = "sdk apis " .. i
      local r, out = run(prompt)
      assert.same({}, errors_but(r, "responses_stream"), out)
      local e = r.embeddings
      assert.is_true(e.ok, out)
      assert.equal("list", e.object)
      assert.equal(2, e.count)
      assert.equal(8, e.dims)
      assert.equal(e.usage.prompt_tokens, e.usage.total_tokens)
      assert.matches("^h%-%d+$", e.request_id, out) -- the upstream's x-request-id
      local p = r.responses
      assert.is_true(p.ok, out)
      assert.equal("response", p.object)
      assert.matches("^resp_h%-%d+$", p.id)
      assert.equal("completed", p.status)
      assert.equal("echo: " .. prompt, p.text)
      assert.equal(p.usage.input_tokens + p.usage.output_tokens, p.usage.total_tokens)
      assert.equal(p.id:sub(6), p.request_id)
    end
    local after = mocks.h:stats().paths
    assert.equal(2, after["/v1/embeddings"] - (before["/v1/embeddings"] or 0))
    -- a wrong key is an AuthenticationError for the SDK, on every step
    local r = node.run(script, n.base .. "/v1", "gw-wrong", "gpt-x", "nope", "apis")
    assert.equal(3, #r.errors)
    for _, e in ipairs(r.errors) do assert.equal(401, e.status) end
  end)

  it("responses.create({ stream: true }) yields the upstream's named events to response.completed", function()
    local before = mocks.h:stats().streams
    for i = 1, 2 do
      local prompt = "sdk stream " .. i
      local r, out = run(prompt)
      assert.same({}, errors_but(r, nil), out)
      local s = r.responses_stream
      assert.is_true(s.ok, out)
      assert.equal("response.created", s.events[1])
      assert.equal("response.completed", s.events[#s.events])
      assert.is_true(#s.events >= 4, out)
      assert.equal("echo: " .. prompt, s.text)
      assert.equal("completed", s.status)
      assert.equal(s.usage.input_tokens + s.usage.output_tokens, s.usage.total_tokens)
      assert.matches("^h%-%d+$", s.request_id, out)
    end
    assert.equal(2, mocks.h:stats().streams - before)
  end)

  it("leaves no upstream key in the error log", function()
    assert.is_nil(n:error_log():find("SECRET", 1, true), "an upstream key in the error log")
  end)
end)
