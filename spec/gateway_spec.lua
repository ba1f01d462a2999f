-- The OpenResty gateway (lua/llmrelay/resty/gateway.lua) in real nginx, with
-- mock-llm upstreams: routes, client auth, upstream keys that never leave the
-- server, errors before and after a stream started, the official OpenAI Node
-- SDK as a client, and issue 7's bar (2 workers, a lua_shared_dict, 4 faulty
-- upstreams, 1,000 requests at concurrency 50).
-- Run from the repo root (make && make LUA=luajit first):
--   busted --lua=lua5.4 spec/gateway_spec.lua
-- Needs nginx + libnginx-mod-http-lua (spec/support/nginx.lua), curl >= 7.84
-- (--parallel, %header{} in -w), node + npm (spec/support/node/install.sh).
local cjson = require "cjson"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local load = require "spec.support.load"
local now = require("llmrelay.core").now

-- Every upstream key in this file starts with this, and no gateway answer,
-- header or log line may hold it (nor "SECRET", which they all contain).
local KEY_MARK = "sk-upstream"

local function assert_no_key(text, where)
  assert.is_nil(text:find(KEY_MARK, 1, true), where .. " holds an upstream key:\n" .. text)
  assert.is_nil(text:find("SECRET", 1, true), where .. " holds part of an upstream key:\n" .. text)
end

local function assert_clean_log(log)
  local p = load.log_problem(log)
  assert.is_nil(p, "the error log matches '" .. tostring(p) .. "':\n" .. log)
end

local req = load.request

local function chat_body(prompt, extra)
  local t = { model = "gpt-x", messages = { { role = "user", content = prompt } } }
  for k, v in pairs(extra or {}) do t[k] = v end
  return cjson.encode(t)
end

local function decode(body)
  local ok, v = pcall(cjson.decode, body)
  assert(ok and type(v) == "table", "not a JSON object: " .. tostring(body))
  return v
end

local function assert_openai_error(body)
  local doc = decode(body)
  assert.is_table(doc.error, body)
  assert.is_string(doc.error.message, body)
  assert.is_string(doc.error.type, body)
  return doc
end

-- The data: payloads of an SSE body, in order.
local function sse_data(body)
  local list = {}
  for line in body:gmatch("[^\n]+") do
    local d = line:match("^data: ?(.*)$")
    if d then list[#list + 1] = d end
  end
  return list
end

-- The content deltas of an SSE body, joined.
local function sse_content(data)
  local parts = {}
  for _, d in ipairs(data) do
    if d ~= "[DONE]" then
      local c = decode(d)
      local delta = c.choices and c.choices[1] and c.choices[1].delta
      if delta and type(delta.content) == "string" then parts[#parts + 1] = delta.content end
    end
  end
  return table.concat(parts)
end

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local show = load.show

---------------------------------------------------------------------------
-- The official OpenAI Node SDK (spec/support/node)

local node = require "spec.support.node"
local install_sdk, sdk = node.install, node.run

---------------------------------------------------------------------------


describe("gateway", function()
  if not nginx.required(it, "gateway spec") then return end

  local n, mocks, dead, sdk_script, sdk_why
  local GW = { "Authorization: Bearer gw-key-1", "Content-Type: application/json" }
  local function url(i, path) return "http://127.0.0.1:" .. n.ports[i] .. path end

  setup(function()
    sdk_script, sdk_why = install_sdk()
    mocks = {} -- filled one by one: teardown stops whatever started
    mocks.good = mock.start{ name = "good", models = { "gpt-x" }, auth_key = "sk-upstream-SECRET-good" }
    mocks.alt = mock.start{ name = "alt", fail_rate = 1 }
    mocks.cut = mock.start{ name = "cut", stream_cut_after = 2, stream_chunk_ms = 20 }
    mocks.locked = mock.start{ name = "locked", auth_key = "the-right-key" }
    mocks.h = mock.start{ name = "h" }
    mocks.bad = mock.start{ name = "bad", fail_rate = 1 }
    dead = { mock.free_port(), mock.free_port() }
    local M = {}
    for k, m in pairs(mocks) do M[k] = m.url end
    n = nginx.start{
      workers = 2,
      shared_dicts = { llmrelay = "4m" },
      ports = 8,
      log_level = "info",
      init = ([[
        local llmrelay = require "llmrelay"
        local T = { connect = 2, first_byte = 10, total = 20 }
        clients = {}
        clients.main = llmrelay.new{ name = "main", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 3, base_delay = 0.05 },
          endpoints = {
            { name = "good", base_url = %q, api_key = "sk-upstream-SECRET-good", models = { "gpt-x" } },
            { name = "alt", base_url = %q, api_key = "sk-upstream-SECRET-alt", models = { "gpt-x", "gpt-y" } } } }
        clients.down = llmrelay.new{ name = "down", shared_dict = "llmrelay", timeout = T,
          -- max_retry_after = 1: with every breaker open, answer 503 at once
          -- rather than wait (up to 120 s by default) for a cooldown to end
          retry = { max_attempts = 2, base_delay = 0.05, max_retry_after = 1 },
          breaker = { failure_threshold = 2, cooldown = 30 },
          endpoints = {
            { name = "d1", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-d1" },
            { name = "d2", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-d2" } } }
        -- the same, with fresh breakers, for the streamed case (served under /fresh/)
        clients.down2 = llmrelay.new{ name = "down2", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 2, base_delay = 0.05, max_retry_after = 1 },
          endpoints = {
            { name = "d1", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-d1" },
            { name = "d2", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-d2" } } }
        -- default max_retry_after (120 s): only the gateway's deadline keeps a caller from waiting
        clients.down3 = llmrelay.new{ name = "down3", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 2, base_delay = 0.05 },
          breaker = { failure_threshold = 1, cooldown = 30 },
          endpoints = {
            { name = "d1", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-d1" },
            { name = "d2", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-d2" } } }
        clients.cut = llmrelay.new{ name = "cut", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 1 },
          endpoints = { { name = "cut", base_url = %q, api_key = "sk-upstream-SECRET-cut" } } }
        clients.locked = llmrelay.new{ name = "locked", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 1 },
          endpoints = { { name = "locked", base_url = %q, api_key = "sk-upstream-SECRET-locked" } } }
        clients.plain401 = llmrelay.new{ name = "plain401", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 1 },
          endpoints = { { name = "plain401", base_url = "http://127.0.0.1:$PORT6/v1",
                          api_key = "sk-upstream-SECRET-plain-text-401" } } }
        clients.sdk = llmrelay.new{ name = "sdk", shared_dict = "llmrelay", timeout = T,
          retry = { max_attempts = 4, base_delay = 0.05 },
          endpoints = {
            { name = "dead", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-dead" },
            { name = "bad", base_url = %q, api_key = "sk-upstream-SECRET-bad" },
            { name = "h", base_url = %q, api_key = "sk-upstream-SECRET-h", models = { "gpt-x", "gpt-z" } } } }
      ]]):format(M.good, M.alt, dead[1], dead[2], dead[1], dead[2], dead[1], dead[2], M.cut, M.locked, dead[1], M.bad, M.h),
      http = [[
        lua_socket_log_errors off;
        # a server that echoes the key it was given in a plain-text 401 (like
        # some proxies do), padded so that a 200-byte cut lands inside the key
        map $http_authorization $presented { "~^Bearer (?<k>.+)$" $k; default ""; }
        server {
          listen 127.0.0.1:$PORT6;
          location / {
            default_type text/plain;
            return 401 "]] .. ("x"):rep(150) .. [[ Incorrect API key provided: $presented";
          }
        }
        server {
          listen 127.0.0.1:$PORT;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.main, { keys = { "gw-key-1", "gw-key-2" } })
          } }
        }
        server {
          listen 127.0.0.1:$PORT2;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.main, { keys = { "gw-key-1" }, open_status = true })
          } }
        }
        server {
          listen 127.0.0.1:$PORT3;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.down, { anonymous = true })
          } }
          location /fresh/ { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.down2, { anonymous = true })
          } }
          location /deadline/ { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.down3, { deadline = 2, anonymous = true })
          } }
        }
        server {
          listen 127.0.0.1:$PORT4;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.cut, { anonymous = true })
          } }
        }
        server {
          listen 127.0.0.1:$PORT5;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.locked, { anonymous = true })
          } }
        }
        server {
          listen 127.0.0.1:$PORT7;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.plain401, { anonymous = true })
          } }
        }
        server {
          listen 127.0.0.1:$PORT8;
          location / { content_by_lua_block {
            require("llmrelay.resty.gateway").serve(clients.sdk, { keys = { "gw-sdk-key" } })
          } }
        }
      ]],
    }
  end)

  teardown(function()
    if n then n:stop() end
    for _, m in pairs(mocks or {}) do m:stop() end
  end)

  describe("routes", function()
    it("POST /v1/chat/completions answers JSON from the healthy upstream", function()
      for i = 1, 4 do -- alt (always 500) serves gpt-x too: the gateway fails over
        local status, body, h = req(url(1, "/v1/chat/completions"),
          { method = "POST", headers = GW, body = chat_body("hello " .. i) })
        assert.equal(200, status, body)
        assert.matches("^application/json", h["content-type"])
        assert.equal("good", h["x-llmrelay-endpoint"])
        local doc = decode(body)
        assert.equal("chat.completion", doc.object)
        assert.matches("^chatcmpl%-good%-%d+$", doc.id)
        assert.equal("echo: hello " .. i, doc.choices[1].message.content)
        assert_no_key(body, "the body")
      end
    end)

    it("streams SSE chunks that end with data: [DONE]", function()
      local status, body, h = req(url(1, "/v1/chat/completions"),
        { method = "POST", headers = GW, body = chat_body("hello stream", { stream = true }) })
      assert.equal(200, status, body)
      assert.matches("^text/event%-stream", h["content-type"])
      local data = sse_data(body)
      assert.is_true(#data >= 3, body)
      assert.equal("[DONE]", data[#data])
      assert.matches("data: %[DONE%]\n\n$", body)
      for i = 1, #data - 1 do assert.equal("chat.completion.chunk", decode(data[i]).object) end
      assert.equal("echo: hello stream", sse_content(data))
    end)

    it("GET /v1/models lists the union of the configured models", function()
      local status, body, h = req(url(1, "/v1/models"), { headers = GW })
      assert.equal(200, status, body)
      assert.matches("^application/json", h["content-type"])
      local doc = decode(body)
      assert.equal("list", doc.object)
      local ids = {}
      for i, m in ipairs(doc.data) do
        ids[i] = m.id
        assert.equal("model", m.object)
      end
      table.sort(ids)
      assert.same({ "gpt-x", "gpt-y" }, ids)
    end)

    it("/health is JSON with the endpoints by name and no key", function()
      local status, body, h, raw = req(url(1, "/health"), { headers = GW })
      assert.equal(200, status, body)
      assert.matches("^application/json", h["content-type"])
      local doc = decode(body)
      assert.is_string(doc.status)
      assert.is_truthy(({ ok = true, degraded = true })[doc.status], body)
      assert.is_number(doc.worker)
      local names = {}
      for i, e in ipairs(doc.endpoints) do names[i] = e.name end
      assert.same({ "good", "alt" }, names)
      assert_no_key(body, "/health")
      assert_no_key(raw, "/health's headers")
    end)

    it("/metrics is Prometheus text", function()
      local status, body, h = req(url(1, "/metrics"), { headers = GW })
      assert.equal(200, status, body)
      assert.matches("^text/plain", h["content-type"])
      assert.matches("# TYPE llmrelay_requests_total counter", body, 1, true)
      assert.matches('llmrelay_requests_total{endpoint="good"} %d+', body)
      assert.matches('llmrelay_breaker_state{endpoint="alt"} %d', body)
      for line in body:gmatch("[^\n]+") do
        if line:sub(1, 1) ~= "#" then
          assert.matches('^[%a_:][%w_:]*{?[^}]*}? %-?[%d.e+-]+$', line)
        end
      end
      assert_no_key(body, "/metrics")
    end)

    it("answers 404 JSON for an unknown route and 405 for GET on chat", function()
      local status, body = req(url(1, "/v1/nothing"), { headers = GW })
      assert.equal(404, status)
      assert_openai_error(body)
      local h
      status, body, h = req(url(1, "/v1/chat/completions"), { headers = GW })
      assert.equal(405, status)
      assert_openai_error(body)
      assert.equal("POST", h["allow"])
    end)

    it("answers 400 JSON for a body that is not a chat request", function()
      local status, body = req(url(1, "/v1/chat/completions"), { method = "POST", headers = GW, body = "{nope" })
      assert.equal(400, status)
      assert_openai_error(body)
    end)
  end)

  describe("auth", function()
    it("answers 401 JSON without a key or with a wrong one", function()
      for _, hs in ipairs{ {}, { "Authorization: Bearer gw-key-3" }, { "api-key: nope" },
                           { "Authorization: Bearer gw-key-1x" }, { "Authorization: Basic gw-key-1" } } do
        for _, path in ipairs{ "/v1/models", "/health", "/metrics" } do
          local status, body = req(url(1, path), { headers = hs })
          assert.equal(401, status, path .. " " .. (hs[1] or "no key") .. ": " .. body)
          assert_openai_error(body)
        end
        local status, body = req(url(1, "/v1/chat/completions"),
          { method = "POST", headers = hs, body = chat_body("x") })
        assert.equal(401, status, body)
        assert_openai_error(body)
      end
    end)

    it("accepts every configured key, as Bearer and as api-key", function()
      for _, hs in ipairs{ { "Authorization: Bearer gw-key-1" }, { "Authorization: Bearer gw-key-2" },
                           { "authorization: bearer gw-key-2" }, { "api-key: gw-key-1" }, { "api-key: gw-key-2" } } do
        local status, body = req(url(1, "/v1/models"), { headers = hs })
        assert.equal(200, status, hs[1] .. ": " .. body)
        status, body = req(url(1, "/v1/chat/completions"),
          { method = "POST", headers = { hs[1], "Content-Type: application/json" }, body = chat_body("k") })
        assert.equal(200, status, hs[1] .. ": " .. body)
        assert.equal("echo: k", decode(body).choices[1].message.content)
      end
    end)

    it("open_status lets /health and /metrics through without a key, nothing else", function()
      local status, body = req(url(2, "/health"))
      assert.equal(200, status, body)
      assert_no_key(body, "/health")
      status, body = req(url(2, "/metrics"))
      assert.equal(200, status, body)
      status = req(url(2, "/v1/models"))
      assert.equal(401, status)
      status = req(url(2, "/v1/chat/completions"), { method = "POST", body = chat_body("x") })
      assert.equal(401, status)
      status = req(url(2, "/v1/models"), { headers = { "Authorization: Bearer gw-key-1" } })
      assert.equal(200, status)
    end)

    it("keeps an upstream key that a 401 JSON body echoes out of the answer", function()
      for _, stream in ipairs{ false, true } do
        local status, body, _, raw = req(url(5, "/v1/chat/completions"),
          { method = "POST", body = chat_body("who am i", { stream = stream or nil }) })
        assert.is_true(status >= 400, body)
        assert.are_not.equal(200, status)
        assert_openai_error(body)
        assert_no_key(body, "the error body")
        assert_no_key(raw, "the error headers")
      end
      -- the mock did see (and echo) the key: the case is real
      assert.is_true(mocks.locked:stats().auth_failures >= 2)
      for _, path in ipairs{ "/health", "/metrics", "/v1/models" } do
        local _, body, _, raw = req(url(5, path))
        assert_no_key(body, path)
        assert_no_key(raw, path .. "'s headers")
      end
    end)

    it("keeps an upstream key that a plain-text 401 echoes out of the answer, even cut short", function()
      local status, body, _, raw = req(url(7, "/v1/chat/completions"), { method = "POST", body = chat_body("x") })
      assert.is_true(status >= 400, body)
      assert_openai_error(body)
      assert_no_key(body, "the error body")
      assert_no_key(raw, "the error headers")
    end)
  end)

  describe("errors", function()
    it("answers 502/503 OpenAI-style JSON when every upstream is down", function()
      local statuses = {}
      for i = 1, 4 do
        local t0 = now()
        local status, body, h = req(url(3, "/v1/chat/completions"),
          { method = "POST", body = chat_body("down " .. i) })
        assert.is_truthy(status == 502 or status == 503, tostring(status) .. " " .. body)
        assert.is_true(now() - t0 < 3, "took " .. (now() - t0) .. " s")
        assert.matches("^application/json", h["content-type"])
        assert_openai_error(body)
        assert_no_key(body, "the error body")
        if status == 503 then
          assert.matches("^%d+$", h["retry-after"] or "", "503 without Retry-After")
        end
        statuses[i] = status
      end
      -- the last ones find every breaker open: 503 (circuit_open), not 502
      assert.equal(503, statuses[4], table.concat(statuses, " "))
      -- every breaker is open now (failure_threshold = 2): /health says so
      local status, body = req(url(3, "/health"))
      assert.equal(503, status, body)
      assert.equal("unavailable", decode(body).status)
    end)

    it("answers a streamed request with an HTTP error, not 200 SSE, when every upstream is down", function()
      -- fresh breakers: the attempts are made (and refused) before the answer
      local status, body, h = req(url(3, "/fresh/v1/chat/completions"),
        { method = "POST", body = chat_body("down stream", { stream = true }) })
      assert.equal(502, status, body)
      assert.matches("^application/json", h["content-type"])
      assert.equal("connect", assert_openai_error(body).error.code)
      -- open breakers (the client above): 503 at once
      status, body, h = req(url(3, "/v1/chat/completions"),
        { method = "POST", body = chat_body("down stream", { stream = true }) })
      assert.equal(503, status, body)
      assert.matches("^application/json", h["content-type"])
      assert_openai_error(body)
    end)

    it("answers at once with 503 and Retry-After when only a wait past opts.deadline could help", function()
      local status, body = req(url(3, "/deadline/v1/chat/completions"), { method = "POST", body = chat_body("d1") })
      assert.equal(502, status, body) -- both refused: both breakers open (threshold 1, cool-down 30 s)
      local t0 = now()
      local h
      status, body, h = req(url(3, "/deadline/v1/chat/completions"), { method = "POST", body = chat_body("d2") })
      assert.is_true(now() - t0 < 1, "waited " .. (now() - t0) .. " s")
      assert.equal(503, status, body)
      assert.equal("circuit_open", assert_openai_error(body).error.code)
      local ra = tonumber(h["retry-after"])
      assert.is_true(ra ~= nil and ra >= 25 and ra <= 31, tostring(h["retry-after"]))
    end)

    it("ends a stream cut on its last attempt with an error event, not silently", function()
      local status, body, h = req(url(4, "/v1/chat/completions"),
        { method = "POST", body = chat_body("one two three four five six", { stream = true }) })
      assert.equal(200, status, body)
      assert.matches("^text/event%-stream", h["content-type"])
      local data = sse_data(body)
      assert.is_true(#data >= 2, body)
      local last = data[#data]
      assert.are_not.equal("[DONE]", last, body)
      assert.is_nil(body:find("[DONE]", 1, true), body)
      local doc = decode(last)
      assert.is_table(doc.error, body)
      assert.is_string(doc.error.message)
      assert.is_string(doc.error.type)
      -- what came before the error was the upstream's own chunks
      assert.equal("chat.completion.chunk", decode(data[1]).object)
      assert.is_true(mocks.cut:stats().stream_cuts >= 1)
      -- the same endpoint answers plain requests
      status, body = req(url(4, "/v1/chat/completions"), { method = "POST", body = chat_body("plain") })
      assert.equal(200, status, body)
    end)
  end)

  describe("the official OpenAI Node SDK", function()
    it("talks to the gateway unchanged (one upstream refused, one always 500, one healthy)", function()
      assert(sdk_script, "the Node SDK is needed for issue 7 (sh tools/install-deps installs node and npm): "
        .. tostring(sdk_why))
      local base = url(8, "/v1")
      for i = 1, 3 do
        local prompt = "sdk prompt " .. i
        local r, out = sdk(sdk_script, base, "gw-sdk-key", "gpt-x", prompt)
        assert.same({}, r.errors, out)
        assert.is_true(r.plain.ok, out)
        assert.equal("echo: " .. prompt, r.plain.content)
        assert.matches("^chatcmpl%-h%-%d+$", r.plain.id)
        assert.is_true(r.stream.ok, out)
        assert.equal("echo: " .. prompt, r.stream.content)
        assert.is_true(r.stream.chunks >= 2, out)
        assert.equal("stop", r.stream.finish_reason)
        table.sort(r.models)
        assert.same({ "gpt-x", "gpt-z" }, r.models)
      end
      -- a wrong key is an AuthenticationError for the SDK
      local r = sdk(sdk_script, base, "gw-wrong", "gpt-x", "nope")
      assert.is_false(r.plain.ok)
      assert.equal(401, r.errors[1].status)
      print(("\ngateway/sdk: upstream attempts: always-500 %d, healthy %d (the refused one is not counted)")
        :format(mocks.bad:stats().requests, mocks.h:stats().requests))
    end)
  end)

  it("leaves no Lua error, alert or upstream key in the error log (log level info)", function()
    local log = n:error_log()
    assert_clean_log(log)
    assert_no_key(log, "the error log")
  end)
end)

---------------------------------------------------------------------------
-- Issue 12: serving without keys is said (anonymous = true) or refused; one
-- data: line per event whatever the upstream's framing; /models lists [].

describe("gateway (issue 12)", function()
  if not nginx.required(it, "gateway spec") then return end

  local CLIENT = [[
    local llmrelay = require "llmrelay"
    local gateway = require "llmrelay.resty.gateway"
    ml_client = llmrelay.new{ name = "ml", timeout = { connect = 2, first_byte = 10, total = 20 },
      retry = { max_attempts = 1 },
      endpoints = { { name = "ml", base_url = %q, api_key = "sk-upstream-SECRET-ml" } } }
  ]]
  local ml, g

  setup(function()
    -- every chunk's JSON comes over four data: lines
    ml = mock.start{ name = "ml", stream_multiline_data = 1 }
    g = nginx.start{
      ports = 2,
      init = CLIENT:format(ml.url) .. " ml_opts = { anonymous = true }",
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT;
          location / { content_by_lua_block { require("llmrelay.resty.gateway").serve(ml_client, ml_opts) } }
        }
        server {
          listen 127.0.0.1:$PORT2;
          location / { content_by_lua_block { require("llmrelay.resty.gateway").serve(ml_client) } }
        }
      ]],
    }
  end)

  teardown(function()
    if g then g:stop() end
    if ml then ml:stop() end
  end)

  it("gateway.new refuses to be built without keys unless anonymous = true: nginx does not start", function()
    for _, case in ipairs{
      { opts = "{}", says = "no gateway keys" },
      { opts = "{ keys = {} }", says = "no gateway keys" },
      { opts = '{ keys_env = "LLMRELAY_GW_SPEC_UNSET" }', says = "LLMRELAY_GW_SPEC_UNSET is not set" },
      { opts = '{ keys = { "gw-k" }, anonymous = true }', says = "choose one" },
      { opts = '{ anonymous = "yes" }', says = "opts.anonymous must be a boolean" },
    } do
      local ok, err = pcall(nginx.start, {
        init = CLIENT:format("http://127.0.0.1:9/v1") .. " gateway.new(ml_client, " .. case.opts .. ")" })
      assert.is_false(ok, case.opts .. ": nginx started")
      err = tostring(err)
      assert.truthy(err:find("gateway.new: ", 1, true), err)
      assert.truthy(err:find(case.says, 1, true), case.opts .. ": " .. err)
      assert.truthy(err:find("opts.anonymous", 1, true), case.opts .. ": " .. err)
    end
  end)

  it("gateway.new with anonymous = true serves callers without a key, with a warning in the error log at start", function()
    local a = nginx.start{
      init = CLIENT:format(ml.url) .. " ml_gateway = gateway.new(ml_client, { anonymous = true })",
      http = [[ server { listen 127.0.0.1:$PORT; location / { content_by_lua_block { ml_gateway:serve() } } } ]],
    }
    local ok, err = pcall(function()
      local log = a:error_log() -- before any request: the warning is the start's
      assert.truthy(log:find("%[warn%][^\n]*opts%.anonymous = true: every caller is served without a gateway key"), log)
      local status, body = req(a.base .. "/v1/chat/completions", { method = "POST", body = chat_body("anyone") })
      assert.equal(200, status, body)
      assert.equal("echo: anyone", decode(body).choices[1].message.content)
    end)
    a:stop()
    if not ok then error(err, 0) end
  end)

  it("gateway.serve with anonymous = true serves callers without a key and logs the warning", function()
    local status, body = req(g.base .. "/v1/models")
    assert.equal(200, status, body)
    assert.truthy(g:error_log():find("%[warn%][^\n]*opts%.anonymous = true: every caller is served without a gateway key"),
                  g:error_log())
  end)

  it("gateway.serve without keys or anonymous answers every request 500, naming opts.anonymous", function()
    local before = ml:stats().requests
    for _, r in ipairs{ { path = "/v1/models" }, { path = "/health" },
                        { path = "/v1/chat/completions", method = "POST", body = chat_body("x") } } do
      local status, body = req("http://127.0.0.1:" .. g.ports[2] .. r.path, { method = r.method, body = r.body })
      assert.equal(500, status, r.path .. ": " .. body)
      local doc = assert_openai_error(body)
      assert.equal("gateway_config", doc.error.code)
      assert.truthy(doc.error.message:find("opts.anonymous = true", 1, true), body)
    end
    assert.equal(before, ml:stats().requests) -- nothing went upstream
    assert.truthy(g:error_log():find("%[error%][^\n]*gateway%.serve: no gateway keys"), g:error_log())
  end)

  it("re-frames an event that came over several data: lines as one data: line", function()
    -- the fixture is real: straight from the mock, one event spans several lines
    local _, direct = req(ml.url .. "/chat/completions",
      { method = "POST", body = chat_body("one two three", { stream = true }) })
    assert.truthy(direct:find('\ndata: "object":"chat.completion.chunk",\n', 1, true), direct)
    local status, body, h = req(g.base .. "/v1/chat/completions",
      { method = "POST", body = chat_body("one two three", { stream = true }) })
    assert.equal(200, status, body)
    assert.matches("^text/event%-stream", h["content-type"])
    local events = 0
    for event in body:gmatch("(.-)\n\n") do
      events = events + 1
      assert.truthy(event:match("^data: [^\n]*$"), "an event of several lines:\n" .. event)
    end
    assert.matches("\n\n$", body)
    local data = sse_data(body)
    assert.equal(events, #data)
    assert.equal("[DONE]", data[#data])
    for i = 1, #data - 1 do assert.equal("chat.completion.chunk", decode(data[i]).object) end
    assert.equal("echo: one two three", sse_content(data))
  end)

  it("GET /v1/models with no model configured answers \"data\":[]", function()
    local status, body = req(g.base .. "/v1/models")
    assert.equal(200, status, body)
    assert.truthy(body:find('"data":[]', 1, true), body)
    assert.equal("list", decode(body).object)
  end)

  it("answers 400 invalid_request, naming the field, to a body the core refuses before sending", function()
    local before = ml:stats().requests
    for _, stream in ipairs{ false, true } do
      local body = '{"model":"m","stream":' .. tostring(stream)
        .. ',"messages":[{"role":"user","content":"bad \255 byte"}]}'
      local status, answer = req(g.base .. "/v1/chat/completions", { method = "POST", body = body })
      assert.equal(400, status, answer .. g:error_log())
      local doc = assert_openai_error(answer)
      assert.equal("invalid_request_error", doc.error.type)
      assert.truthy(doc.error.message:find("messages[1].content is not valid UTF-8", 1, true), answer)
    end
    assert.equal(before, ml:stats().requests) -- nothing went upstream
  end)
end)

---------------------------------------------------------------------------
-- Issue 7's bar

-- Starts the 4 upstreams and a 2-worker gateway (with or without the shared
-- dict), sends 1,000 requests at concurrency 50, stops everything; returns the
-- figures. Every upstream answers after LATENCY_MS (the refused one at once),
-- so that the load lasts a few cooldowns and half-open probes happen.
-- max_cooldown = cooldown: a failed probe does not double the cooldown.
local BREAKER = { failure_threshold = 10, cooldown = 0.5, half_open_probes = 1 }
local N, C, LATENCY_MS = 1000, 50, 100

local function bar_run(shared)
  local m500 = mock.start{ name = "always500", fail_rate = 1, latency_ms = LATENCY_MS }
  local m50 = mock.start{ name = "half500", fail_rate = 0.5, latency_ms = LATENCY_MS }
  local mok = mock.start{ name = "healthy", latency_ms = LATENCY_MS }
  local refused = mock.free_port()
  local g
  local ok, res = pcall(function()
    g = nginx.start{
      workers = 2,
      shared_dicts = shared and { llmrelay = "10m" } or nil,
      init = ([[
        local llmrelay = require "llmrelay"
        client = llmrelay.new{ name = "bar", shared_dict = %s,
          endpoints = {
            { name = "refused", base_url = "http://127.0.0.1:%d/v1", api_key = "sk-upstream-SECRET-1" },
            { name = "always500", base_url = %q, api_key = "sk-upstream-SECRET-2" },
            { name = "half500", base_url = %q, api_key = "sk-upstream-SECRET-3" },
            { name = "healthy", base_url = %q, api_key = "sk-upstream-SECRET-4" } },
          breaker = { failure_threshold = %d, cooldown = %g, max_cooldown = %g, half_open_probes = %d },
          retry = { max_attempts = 5 },
          timeout = { connect = 2, first_byte = 10, total = 30 } }
      ]]):format(shared and '"llmrelay"' or "nil", refused, m500.url, m50.url, mok.url,
                 BREAKER.failure_threshold, BREAKER.cooldown, BREAKER.cooldown, BREAKER.half_open_probes),
      http = [[
        lua_socket_log_errors off;
        server {
          listen 127.0.0.1:$PORT reuseport;
          location / {
            add_header X-Worker $pid always;
            content_by_lua_block {
              require("llmrelay.resty.gateway").serve(client, { keys = { "gw-bar-key" } })
            }
          }
        }
      ]],
    }
    local leaked
    local r = load.run{
      url = g.base .. "/v1/chat/completions", n = N, c = C,
      headers = { "Authorization: Bearer gw-bar-key", "Content-Type: application/json" },
      body = function(i) return chat_body("bar request " .. i) end,
      expect = function(i) return '"content":"echo: bar request ' .. i .. '"' end,
      scan = function(body) if body:find(KEY_MARK, 1, true) then leaked = body end end,
    }
    r.leaked = leaked
    r.always500 = m500:stats().requests
    r.half500 = m50:stats().requests
    r.healthy = mok:stats().requests
    r.log = g:error_log()
    r.worker_pids = g:worker_pids()
    return r
  end)
  if g then g:stop() end
  m500:stop()
  m50:stop()
  mok:stop()
  if not ok then error(res, 0) end
  return res
end

-- The bound on the always-500 upstream's attempts, all workers together:
--   failure_threshold + half_open_probes x ceil(elapsed / cooldown)
-- (the breaker opens after failure_threshold failures; after that only
-- half-open probes reach it, at most half_open_probes per cooldown).
local function bound(elapsed)
  return BREAKER.failure_threshold + BREAKER.half_open_probes * math.ceil(elapsed / BREAKER.cooldown)
end

local function report(label, r)
  print(("\n%s: %d requests, C=%d, %.2f s (%.0f req/s); statuses %s; workers %s; served by %s;\n"
    .. "  upstream attempts: always-500 %d (bound %d = %d + %d x ceil(%.2f / %g)), 50%%-500 %d, healthy %d")
    :format(label, N, C, r.elapsed, N / r.elapsed, show(r.codes), show(r.workers), show(r.endpoints),
            r.always500, bound(r.elapsed), BREAKER.failure_threshold, BREAKER.half_open_probes,
            r.elapsed, BREAKER.cooldown, r.half500, r.healthy))
end

describe("gateway bar (issue 7)", function()
  if not nginx.required(it, "gateway spec") then return end

  it("2 workers + lua_shared_dict, 4 upstreams (refused / always 500 / 50% 500 / healthy): "
     .. "1,000 x 200 at C=50, the always-500 one within failure_threshold + probes per cooldown", function()
    local r = bar_run(true)
    report("gateway bar, shared dict", r)
    assert.equal(0, r.rc, "curl failed: " .. r.stderr)
    assert.equal(N, r.lines, "curl reported " .. r.lines .. " transfers")
    assert.equal(N, r.codes[200] or 0, "statuses " .. show(r.codes) .. "; e.g.\n" .. table.concat(r.bad, "\n"))
    assert.equal(N, r.ok_bodies, "answers that echo their own prompt")
    assert.is_nil(r.leaked, "an answer holds an upstream key: " .. tostring(r.leaked))
    -- both workers served requests
    assert.equal(2, #r.worker_pids)
    assert.equal(2, count_keys(r.workers), "requests per worker: " .. show(r.workers))
    for _, pid in ipairs(r.worker_pids) do
      assert.is_true((r.workers[tostring(pid)] or 0) > 0, "worker " .. pid .. " served none: " .. show(r.workers))
    end
    assert.is_true(r.always500 >= 1, "the always-500 upstream was never tried")
    assert.is_true(r.always500 <= bound(r.elapsed),
      ("the always-500 upstream saw %d attempts, more than %d + %d x ceil(%.2f / %g) = %d"):format(
        r.always500, BREAKER.failure_threshold, BREAKER.half_open_probes, r.elapsed, BREAKER.cooldown,
        bound(r.elapsed)))
    assert.is_nil(r.log:find("%[error%]"), "errors in the log:\n" .. r.log)
    assert_clean_log(r.log)
    assert_no_key(r.log, "the error log")
  end)

  it("the same load without the shared dict (per-worker breakers), for comparison", function()
    local r = bar_run(false)
    report("gateway bar, per-worker state (no shared dict)", r)
    print(("  per-worker state: each worker has its own breaker, so up to workers x bound = %d attempts;"
      .. " only printed, not a bar"):format(2 * bound(r.elapsed)))
    -- what holds either way: every request has an HTTP answer (200, or a 5xx
    -- when a worker's own retry budget runs out), both workers serve, no Lua error
    assert.equal(0, r.rc, "curl failed: " .. r.stderr)
    assert.equal(N, r.lines, "curl reported " .. r.lines .. " transfers")
    for code, k in pairs(r.codes) do
      assert.is_truthy(code == 200 or code == 502 or code == 503, k .. " x " .. code)
    end
    assert.is_true((r.codes[200] or 0) >= N * 0.9, "statuses " .. show(r.codes))
    assert.equal(2, count_keys(r.workers), "requests per worker: " .. show(r.workers))
    assert.is_nil(r.leaked, "an answer holds an upstream key: " .. tostring(r.leaked))
    assert_clean_log(r.log)
  end)
end)
