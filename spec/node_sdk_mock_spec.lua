-- The official OpenAI Node SDK (spec/support/node) against the mock server
-- directly: proves the SDK client script that the OpenResty gateway specs use.
-- Run from the repo root: busted --lua=lua5.4 spec/node_sdk_mock_spec.lua
-- Needs node and npm, and the npm registry on the first run (install.sh puts
-- the SDK into build/node). LLMRELAY_NODE=/path/to/node runs the client with
-- another node (e.g. Debian 12's node 18).
local cjson = require "cjson"
local mock = require "spec.support.mock"

-- The node a fresh Debian 12 machine gets from `apt-get install nodejs`
-- (tools/install-deps installs it where no node is on PATH).
local DEBIAN12_NODE = "18.20.4"

local function read(path) return (assert(mock.read_file(path), path)) end

-- "18.20.4" -> { 18, 20, 4 }; a partial "18" or "18.x" -> { 18 } (the rest unbound)
local function parse_version(v)
  local parts = {}
  for n in (v:match("^v?([%d.xX*]+)$") or error("unsupported version in engines: " .. v, 0)):gmatch("[^.]+") do
    if n:match("^%d+$") then parts[#parts + 1] = tonumber(n) else break end
  end
  return parts
end

-- -1, 0, 1 comparing version a with the first #b parts of b
local function cmp(a, b)
  for i = 1, #b do
    if a[i] ~= b[i] then return a[i] < b[i] and -1 or 1 end
  end
  return 0
end

-- npm's range syntax as used by "engines": alternatives joined by ||, each a
-- list of comparators (>=, >, <=, <, =, ^, ~, a bare or x-version). Anything
-- else raises, so an unknown form cannot pass by accident.
local function satisfies(version, range)
  local v = parse_version(version)
  if not range:match("%S") then return true end -- "" is any version
  for alt in (range .. "||"):gmatch("(.-)||") do
    local ok = alt:match("%S") ~= nil
    for c in alt:gmatch("%S+") do
      local op, ver = c:match("^([<>=^~]*)(.+)$")
      local r = parse_version(ver)
      local d = cmp(v, r)
      if op == ">=" then ok = ok and d >= 0
      elseif op == ">" then ok = ok and d > 0
      elseif op == "<=" then ok = ok and d <= 0
      elseif op == "<" then ok = ok and d < 0
      elseif op == "" or op == "=" then ok = ok and d == 0
      elseif op == "^" then ok = ok and d >= 0 and v[1] == r[1]
      elseif op == "~" then ok = ok and d >= 0 and v[1] == r[1] and (r[2] == nil or v[2] == r[2])
      else error("unsupported comparator in engines: " .. c, 0) end
    end
    if ok then return true end
  end
  return false
end

describe("the pinned Node SDK", function()
  local pkg = cjson.decode(read("spec/support/node/package.json"))
  local lock = cjson.decode(read("spec/support/node/package-lock.json"))

  it("is pinned to one exact version, the one package-lock.json holds", function()
    local pin = pkg.dependencies.openai
    assert.matches("^%d+%.%d+%.%d+$", pin)
    assert.equal(pin, lock.packages[""].dependencies.openai)
    assert.equal(pin, lock.packages["node_modules/openai"].version)
  end)

  it("and every package it installs admit Debian 12's node " .. DEBIAN12_NODE .. " (engines)", function()
    for path, p in pairs(lock.packages) do
      local range = type(p.engines) == "table" and p.engines.node
      if range then
        assert.is_true(satisfies(DEBIAN12_NODE, range),
          ("%s@%s needs node %s"):format(path, tostring(p.version), range))
      end
    end
  end)

  it("reads npm's engines ranges as npm does", function()
    assert.is_true(satisfies("18.20.4", ">=18"))
    assert.is_true(satisfies("18.20.4", ">=18.0.0 <23"))
    assert.is_true(satisfies("18.20.4", "^16 || ^18"))
    assert.is_true(satisfies("18.20.4", "~18.20.0"))
    assert.is_true(satisfies("18.20.4", "18.x"))
    assert.is_false(satisfies("18.20.4", ">=22.0.0"))
    assert.is_false(satisfies("18.20.4", ">=20"))
    assert.is_false(satisfies("18.20.4", "^20 || >=22"))
    assert.is_false(satisfies("18.20.4", "~18.19.0"))
    assert.is_false(satisfies("18.20.4", "<18.20.4"))
    assert.has_error(function() satisfies("18.20.4", "node-lts") end)
  end)
end)

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

  it("makes embeddings, a Response and a streamed Response (steps \"apis\")", function()
    m = mock.start{ name = "sdk" }
    local r, out = sdk(script, m.url, "sk-test", "m1", "hi there", "apis")
    assert.same({}, r.errors, out)
    -- embeddings: the SDK asks for base64 and decodes it
    assert.is_true(r.embeddings.ok)
    assert.equal("list", r.embeddings.object)
    assert.equal(2, r.embeddings.count)
    assert.equal(8, r.embeddings.dims)
    assert.equal(r.embeddings.usage.prompt_tokens, r.embeddings.usage.total_tokens)
    assert.equal("sdk-1", r.embeddings.request_id)
    assert.is_true(r.responses.ok)
    assert.equal("response", r.responses.object)
    assert.equal("resp_sdk-2", r.responses.id)
    assert.equal("completed", r.responses.status)
    assert.equal("echo: hi there", r.responses.text)
    assert.equal(r.responses.usage.input_tokens + r.responses.usage.output_tokens,
      r.responses.usage.total_tokens)
    assert.equal("sdk-2", r.responses.request_id)
    local s = r.responses_stream
    assert.is_true(s.ok)
    assert.equal("response.created", s.events[1])
    assert.equal("response.completed", s.events[#s.events])
    assert.equal("echo: hi there", s.text)
    assert.equal("completed", s.status)
    assert.equal("sdk-3", s.request_id)
    local st = m:stats()
    assert.same({ ["/v1/embeddings"] = 1, ["/v1/responses"] = 2 }, st.paths)
    assert.equal(1, st.streams)
  end)

  it("hands a Responses stream's error event to the caller as an event", function()
    -- the SDK does not throw on it: a caller sees type "error" and no
    -- response.completed
    m = mock.start{ name = "sdkerr", stream_error_after = 2 }
    local r, out = sdk(script, m.url, "sk-test", "m1", "hi there", "apis")
    assert.same({}, r.errors, out)
    assert.is_true(r.responses.ok, out)
    assert.same({ "response.created", "response.output_text.delta", "error" },
      r.responses_stream.events)
    assert.equal("echo: ", r.responses_stream.text)
    assert.equal(cjson.null, r.responses_stream.status)
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
