-- Behaviour of llmrelay.new / chat_completion / chat / status against real
-- mock processes (spec/support/mock.lua starts build/mock-llm on 127.0.0.1).
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local cjson = require "cjson"

local now = require("llmrelay.core").now

local function req(text)
  return { model = "mock-model", messages = { { role = "user", content = text or "hi" } } }
end

local dump = require "spec.support.dump"

describe("llmrelay client", function()
  after_each(function() mock.stop_all() end)

  it("answers a chat completion with the decoded body and _llmrelay metadata", function()
    local m = mock.start { name = "a" }
    local c = llmrelay.new { endpoints = { { base_url = m.url, name = "only" } } }
    local resp, err = c:chat_completion(req("hello world"))
    assert.is_nil(err)
    assert.are.equal("chat.completion", resp.object)
    assert.are.equal("echo: hello world", resp.choices[1].message.content)
    assert.are.equal("only", resp._llmrelay.endpoint)
    assert.are.equal(1, resp._llmrelay.attempts)
    assert.is_true(resp._llmrelay.latency > 0 and resp._llmrelay.latency < 5)
    local text, full = c:chat("say this", { model = "mock-model", system = "be brief", temperature = 0 })
    assert.are.equal("echo: say this", text)
    assert.are.equal("only", full._llmrelay.endpoint)
    assert.are.equal(2, m:stats().requests)
    c:close()
  end)

  it("reuses connections: 1,000 sequential calls use at most 2 connections", function()
    local m = mock.start { name = "keepalive" }
    local c = llmrelay.new { endpoints = { { base_url = m.url } } }
    for i = 1, 1000 do
      local resp, err = c:chat_completion(req("n" .. i))
      assert(resp, err)
    end
    local st = m:stats()
    assert.are.equal(1000, st.requests)
    assert.is_true(st.connections <= 2, "connections: " .. st.connections)
    c:close()
  end)

  it("skips a refused endpoint once its breaker opens", function()
    local healthy = mock.start { name = "healthy" }
    local c = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1", name = "dead" },
                    { base_url = healthy.url, name = "healthy" } },
      strategy = "round_robin",
      breaker = { failure_threshold = 3, cooldown = 60 },
    }
    for i = 1, 40 do
      local resp, err = c:chat_completion(req("r" .. i))
      assert(resp, err)
    end
    local st = c:status()
    assert.are.equal("dead", st[1].name)
    assert.are.equal("open", st[1].state)
    assert.are.equal(3, st[1].requests) -- the threshold, then never again within the cooldown
    assert.are.equal("closed", st[2].state)
    assert.are.equal(40, healthy:stats().requests)
  end)

  it("gives an always-500 endpoint at most failure_threshold + probes attempts per cooldown", function()
    local bad = mock.start { name = "bad", fail_rate = 1 }
    local good = mock.start { name = "good" }
    local c = llmrelay.new {
      endpoints = { { base_url = bad.url, name = "bad" }, { base_url = good.url, name = "good" } },
      strategy = "round_robin",
      breaker = { failure_threshold = 3, cooldown = 0.5, max_cooldown = 0.5, half_open_probes = 1 },
    }
    local t0, n = now(), 0
    while now() - t0 < 1.6 do
      local resp, err = c:chat_completion(req())
      assert(resp, err)
      n = n + 1
    end
    local elapsed = now() - t0
    local seen = bad:stats().requests
    -- 3 to open, then one probe per 0.5 s cool-down
    local bound = 3 + math.ceil(elapsed / 0.5)
    assert.is_true(seen >= 4, "bad endpoint saw " .. seen)
    assert.is_true(seen <= bound, ("bad endpoint saw %d attempts, bound %d"):format(seen, bound))
    assert.are.equal(n, good:stats().requests)
  end)

  it("serves 300 of 300 through a pool of refused, 50%-500 and healthy endpoints", function()
    local flaky = mock.start { name = "flaky", fail_rate = 0.5, seed = 7 }
    local healthy = mock.start { name = "healthy" }
    local c = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1", name = "dead" },
                    { base_url = flaky.url, name = "flaky" },
                    { base_url = healthy.url, name = "healthy" } },
    }
    local ok = 0
    for i = 1, 300 do
      local resp, err = c:chat_completion(req("q" .. i))
      assert(resp, err)
      assert.are.equal("echo: q" .. i, resp.choices[1].message.content)
      ok = ok + 1
    end
    assert.are.equal(300, ok)
    local st = c:status()
    assert.are.equal("open", st[1].state)
    assert.is_true(st[1].requests <= 5)
    assert.is_true(flaky:stats().requests > 0) -- the flaky one was used, not abandoned
  end)

  it("retries a 429 with retry-after-ms: 200 after about 200 ms, not seconds", function()
    local m = mock.start { name = "limited", throttle_first = 1, throttle_ms = 200 }
    local events = {}
    local c = llmrelay.new {
      endpoints = { { base_url = m.url } },
      on_event = function(ev) events[#events + 1] = ev end,
    }
    local t0 = now()
    local resp, err = c:chat_completion(req())
    local dt = now() - t0
    assert(resp, err)
    assert.are.equal(2, resp._llmrelay.attempts)
    assert.is_true(dt >= 0.2, "retried after " .. dt)
    assert.is_true(dt < 0.6, "retried after " .. dt)
    local throttle
    for _, ev in ipairs(events) do if ev.type == "throttle" then throttle = ev end end
    assert.truthy(throttle)
    assert.are.equal(429, throttle.status)
    assert.is_true(math.abs(throttle.delay - 0.2) < 0.01)
    local st = m:stats()
    assert.are.equal(1, st.status["429"])
    assert.are.equal(1, st.status["200"])
  end)

  it("returns a 400 after exactly one attempt, never retried elsewhere", function()
    local a = mock.start { name = "a", bad_marker = "POISON" }
    local b = mock.start { name = "b", bad_marker = "POISON" }
    local c = llmrelay.new { endpoints = { { base_url = a.url, name = "a" }, { base_url = b.url, name = "b" } } }
    local resp, err = c:chat_completion(req("this is POISON"))
    assert.is_nil(resp)
    assert.are.equal("invalid_request", err.kind)
    assert.are.equal(400, err.status)
    assert.are.equal(1, err.attempts)
    assert.truthy(err.message:find("bad request marker", 1, true))
    assert.truthy(tostring(err):find("invalid_request", 1, true))
    assert.are.equal(1, a:stats().requests + b:stats().requests)
  end)

  it("fails over when an endpoint never answers (first_byte timeout)", function()
    local hang = mock.start { name = "hang", hang_rate = 1 }
    local good = mock.start { name = "good" }
    local c = llmrelay.new {
      endpoints = { { base_url = hang.url, name = "hang" }, { base_url = good.url, name = "good" } },
      strategy = "priority",
      timeout = { first_byte = 0.3 },
    }
    local t0 = now()
    local resp, err = c:chat_completion(req())
    local dt = now() - t0
    assert(resp, err)
    assert.are.equal("good", resp._llmrelay.endpoint)
    assert.are.equal(2, resp._llmrelay.attempts)
    assert.is_true(dt >= 0.3 and dt < 1.5, "took " .. dt)
  end)

  it("fails over when an answer takes longer than timeout.total", function()
    local slow = mock.start { name = "slow", latency_ms = 2000 }
    local good = mock.start { name = "good" }
    local c = llmrelay.new {
      endpoints = { { base_url = slow.url, name = "slow" }, { base_url = good.url, name = "good" } },
      strategy = "priority",
      timeout = { total = 0.3 },
    }
    local resp, err = c:chat_completion(req())
    assert(resp, err)
    assert.are.equal("good", resp._llmrelay.endpoint)
    assert.are.equal(2, resp._llmrelay.attempts)
  end)

  it("takes a per-request opts.timeout instead of timeout.total", function()
    local slow = mock.start { name = "slow", latency_ms = 1500 }
    local c = llmrelay.new { endpoints = { { base_url = slow.url } }, retry = { max_attempts = 1 } }
    local t0 = now()
    local resp, err = c:chat_completion(req(), { timeout = 0.3 })
    local dt = now() - t0
    assert.is_nil(resp)
    assert.are.equal("timeout", err.kind)
    -- libcurl compares its timeouts in whole milliseconds, so 0.3 s can end
    -- 0.29997 s after t0 (seen once under ASan)
    assert.is_true(dt >= 0.299 and dt < 1.0, "took " .. dt)
    resp, err = c:chat_completion(req(), { timeout = 5 })
    assert(resp, err)
  end)

  it("ends with kind deadline when opts.deadline passes", function()
    local hang = mock.start { name = "hang", hang_rate = 1 }
    local c = llmrelay.new { endpoints = { { base_url = hang.url } } }
    local t0 = now()
    local resp, err = c:chat_completion(req(), { deadline = 0.4 })
    local dt = now() - t0
    assert.is_nil(resp)
    assert.are.equal("deadline", err.kind)
    assert.is_true(dt >= 0.35 and dt < 1.2, "took " .. dt)
  end)

  it("reports connection failures with kind connect and the attempts made", function()
    local c = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1", name = "nobody" } },
      retry = { max_attempts = 2, base_delay = 0.01, max_delay = 0.02 },
    }
    local resp, err = c:chat_completion(req())
    assert.is_nil(resp)
    assert.are.equal("connect", err.kind)
    assert.are.equal("nobody", err.endpoint)
    assert.are.equal(2, err.attempts)
    assert.truthy(tostring(err):find("nobody", 1, true))
  end)

  it("fails over from an endpoint that does not serve the model (404)", function()
    local other = mock.start { name = "other", models = "some-other-model" }
    local good = mock.start { name = "good" }
    local c = llmrelay.new {
      endpoints = { { base_url = other.url, name = "other" }, { base_url = good.url, name = "good" } },
      strategy = "priority",
    }
    local resp, err = c:chat_completion(req())
    assert(resp, err)
    assert.are.equal("good", resp._llmrelay.endpoint)
    assert.are.equal(2, resp._llmrelay.attempts)
    assert.are.equal(1, other:stats().status["404"])
  end)

  it("routes by the endpoints' models lists without trying the others", function()
    local a = mock.start { name = "a" }
    local b = mock.start { name = "b" }
    local c = llmrelay.new {
      endpoints = { { base_url = a.url, name = "a", models = { "model-a" } },
                    { base_url = b.url, name = "b", models = { "model-b" } } },
    }
    for _ = 1, 5 do
      local resp = assert(c:chat_completion { model = "model-b", messages = { { role = "user", content = "x" } } })
      assert.are.equal("b", resp._llmrelay.endpoint)
    end
    assert.are.equal(0, a:stats().requests)
    local resp, err = c:chat_completion { model = "model-z", messages = { { role = "user", content = "x" } } }
    assert.is_nil(resp)
    assert.are.equal("invalid_request", err.kind)
    assert.are.equal(0, err.attempts)
  end)

  it("never lets an api key out, even when the server echoes it back", function()
    local key = "sk-test-SECRET-0123456789abcdef"
    local strict = mock.start { name = "strict", auth_key = "the-right-key" }
    local events = {}
    local c = llmrelay.new {
      endpoints = { { base_url = strict.url, name = "strict", api_key = key } },
      retry = { max_attempts = 2, base_delay = 0.01, max_delay = 0.02 },
      on_event = function(ev) events[#events + 1] = ev end,
    }
    local resp, err = c:chat_completion(req())
    assert.is_nil(resp)
    assert.are.equal("http", err.kind)
    assert.are.equal(401, err.status)
    assert.are.equal(1, strict:stats().auth_failures >= 1 and 1 or 0)
    assert.truthy(err.message:find("Incorrect API key", 1, true), err.message)
    for _, text in ipairs { dump(err), tostring(err), dump(events), dump(c:status()), c:metrics(),
                            dump(c), tostring(c) } do
      assert.is_nil(text:find(key, 1, true), "key leaked in: " .. text)
      assert.is_nil(text:find("0123456789abcdef", 1, true), "part of the key leaked in: " .. text)
    end
    -- and the key really was sent: with the right key the same server answers
    local ok = llmrelay.new { endpoints = { { base_url = strict.url, api_key = "the-right-key" } } }
    assert(ok:chat_completion(req()))
  end)

  it("emits failover and breaker events naming endpoints", function()
    local good = mock.start { name = "good" }
    local events = {}
    local c = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1", name = "dead" },
                    { base_url = good.url, name = "good" } },
      strategy = "priority",
      breaker = { failure_threshold = 2 },
      on_event = function(ev) events[#events + 1] = ev end,
    }
    for _ = 1, 3 do assert(c:chat_completion(req())) end
    local kinds = {}
    for _, ev in ipairs(events) do kinds[ev.type] = ev end
    assert.are.equal("dead", kinds.failover.endpoint)
    assert.are.equal("good", kinds.failover.to)
    assert.are.equal("connect", kinds.failover.kind)
    assert.are.equal("dead", kinds.breaker.endpoint)
    assert.are.equal("open", kinds.breaker.state)
  end)

  it("raises an on_event error after the request finished", function()
    local raised
    local good = mock.start { name = "good" }
    local c = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1" }, { base_url = good.url } },
      strategy = "priority",
      on_event = function() if not raised then raised = true; error("handler bug") end end,
    }
    assert.has_error(function() c:chat_completion(req()) end, "handler bug")
    assert.are.equal(0, c:pending())
    assert(c:chat_completion(req())) -- the client still works
  end)

  it("raises an on_event error whose value is nil or false, not only strings", function()
    local good = mock.start { name = "good" }
    for _, value in ipairs { false, "nil" } do
      local raised
      local c = llmrelay.new {
        endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1" }, { base_url = good.url } },
        strategy = "priority",
        on_event = function()
          if not raised then
            raised = true
            if value == "nil" then error(nil) else error(value) end
          end
        end,
      }
      local ok, e = pcall(c.chat_completion, c, req())
      assert.is_true(raised)
      assert.is_false(ok, "error(" .. tostring(value) .. ") in on_event was swallowed")
      assert.is_nil(value == "nil" and e or nil)
      if value == false then assert.is_false(e) end
      assert.are.equal(0, c:pending())
    end
  end)

  it("caps response bodies at max_response_bytes", function()
    local m = mock.start { name = "big", pad_bytes = 4096 }
    local c = llmrelay.new { endpoints = { { base_url = m.url } }, max_response_bytes = 2048 }
    local resp, err = c:chat_completion(req())
    assert.is_nil(resp)
    assert.are.equal("http", err.kind)
    assert.truthy(err.message:find("max_response_bytes", 1, true))
    assert.are.equal(1, err.attempts)
    local roomy = llmrelay.new { endpoints = { { base_url = m.url } }, max_response_bytes = 8192 }
    assert(roomy:chat_completion(req()))
  end)

  it("rejects bad config and bad arguments with the field's name", function()
    local function msg(f)
      local ok, e = pcall(f)
      assert.is_false(ok)
      return tostring(e)
    end
    assert.truthy(msg(function() llmrelay.new { endpoints = { { base_url = "http://x/v1", weight = -1 } } } end)
      :find("endpoints[1].weight", 1, true))
    assert.truthy(msg(function()
      llmrelay.new { endpoints = { { base_url = "http://x/v1" }, { base_url = "http://y/v1", headers = { ["X-A"] = "a\r\nB: c" } } } }
    end):find("endpoints[2].headers", 1, true))
    assert.truthy(msg(function() llmrelay.new { endpoints = { { base_url = "http://x/v1" } }, retyr = {} } end)
      :find("retyr", 1, true))
    local c = llmrelay.new { endpoints = { { base_url = "http://127.0.0.1:1/v1" } } }
    assert.truthy(msg(function() c:chat_completion("hi") end):find("request must be a table", 1, true))
    assert.truthy(msg(function() c:chat_completion({ messages = {} }, { timeot = 1 }) end):find("timeot", 1, true))
    assert.truthy(msg(function() c:chat_completion({ messages = {}, stream = true }) end):find("stream", 1, true))
    c:close()
    assert.truthy(msg(function() c:chat_completion(req()) end):find("closed", 1, true))
  end)

  it("returns status in config order without keys", function()
    local m = mock.start { name = "s" }
    local c = llmrelay.new {
      endpoints = { { base_url = m.url, name = "first", api_key = "sk-hidden-1" },
                    { base_url = m.url, name = "second", api_key = "sk-hidden-2" } },
    }
    assert(c:chat_completion(req()))
    local st = c:status()
    assert.are.equal(2, #st)
    assert.are.equal("first", st[1].name)
    assert.are.equal("second", st[2].name)
    for _, s in ipairs(st) do
      assert.are.equal("closed", s.state)
      assert.are.equal(0, s.in_flight)
      assert.is_number(s.success_rate)
      assert.is_nil(dump(s):find("sk-hidden", 1, true))
    end
    assert.are.equal(1, st[1].requests + st[2].requests)
    assert.truthy(c:metrics():find('llmrelay_requests_total{endpoint="first"}', 1, true))
  end)
end)

-- Issue 12 items 8, 9 and 14: requests no server could answer well are refused
-- before anything is sent, answers too costly to decode are refused before Lua
-- decodes them, and a method called with '.' says so.
describe("llmrelay client checks", function()
  local core = require "llmrelay.core"
  after_each(function() mock.stop_all() end)

  local function with_messages(messages) return { model = "mock-model", messages = messages } end

  it("refuses invalid UTF-8 up front, naming the field, and sends nothing", function()
    local m = mock.start { name = "utf8" }
    local c = llmrelay.new { endpoints = { { base_url = m.url } },
                             breaker = { failure_threshold = 1, cooldown = 60 } }
    local bad = with_messages { { role = "system", content = "be brief" },
                                { role = "user", content = "caf\xC3\xA9 / ok \xFF here" } }
    local t0 = now()
    local resp, err = c:chat_completion(bad)
    assert.is_nil(resp)
    assert.are.equal("invalid_request", err.kind)
    assert.are.equal(0, err.attempts)
    assert.are.equal("messages[2].content is not valid UTF-8 (byte 12)", err.message)
    -- the same through chat, stream and batch
    local text, cerr = c:chat("\xC3\x28", { model = "mock-model" })
    assert.is_nil(text)
    assert.are.equal("messages[1].content is not valid UTF-8 (byte 1)", cerr.message)
    local chunks, serr = {}, nil
    for chunk, e in c:stream(with_messages { { role = "user", content = "ok", name = "\xED\xA0\x80" } }) do
      if e then serr = e break end
      chunks[#chunks + 1] = chunk
    end
    assert.are.equal(0, #chunks)
    assert.are.equal("invalid_request", serr.kind)
    assert.are.equal("messages[1].name is not valid UTF-8 (byte 1)", serr.message)
    local results = c:batch { bad, with_messages { { role = "user", content = "fine" } } }
    assert.are.equal("invalid_request", results[1].error.kind)
    assert.are.equal("messages[2].content is not valid UTF-8 (byte 12)", results[1].error.message)
    assert.is_true(results[2].ok)
    assert.is_true(now() - t0 < 2)
    -- nothing of the bad requests reached the server, its breaker stayed closed,
    -- and the next request goes out at once
    assert.are.equal(1, m:stats().requests)
    assert.are.equal("closed", c:status()[1].state)
    local ok = assert(c:chat_completion(with_messages { { role = "user", content = "after" } }))
    assert.are.equal(1, ok._llmrelay.attempts)
    c:close()
  end)

  it("refuses messages that are not a non-empty array, naming the field", function()
    local m = mock.start { name = "msgs" }
    local c = llmrelay.new { endpoints = { { base_url = m.url } } }
    local cases = {
      { {}, "messages must be a non-empty array of messages (got an empty object: an empty Lua table encodes as {})" },
      { { role = "user", content = "hi" }, "messages must be a non-empty array of messages (got an object)" },
    }
    for _, case in ipairs(cases) do
      local resp, err = c:chat_completion(with_messages(case[1]))
      assert.is_nil(resp)
      assert.are.equal("invalid_request", err.kind)
      assert.are.equal(case[2], err.message)
    end
    local results = c:batch { with_messages {} }
    assert.are.equal("invalid_request", results[1].error.kind)
    assert.are.equal(0, m:stats().requests)
    c:close()
  end)

  it("says a method was called with '.' instead of ':'", function()
    local c = llmrelay.new { endpoints = { { base_url = "http://127.0.0.1:1/v1" } } }
    local calls = {
      chat = function() c.chat("x") end,
      chat_completion = function() c.chat_completion(req()) end,
      stream = function() c.stream(req()) end,
      batch = function() c.batch({ req() }) end,
      status = function() c.status() end,
      metrics = function() c.metrics() end,
      pending = function() c.pending() end,
      step = function() c.step(0) end,
      close = function() c.close() end,
    }
    for name, f in pairs(calls) do
      local ok, msg = pcall(f)
      assert.is_false(ok)
      assert.are.equal("spec/client_spec.lua:", msg:sub(1, 21), msg) -- the caller's line
      assert.truthy(msg:find("llmrelay: client:" .. name .. " called with '.' instead of ':'", 1, true), msg)
    end
    c:close()
    local ok, msg = pcall(function() c:chat("x") end) -- a closed client still says so
    assert.is_false(ok)
    assert.truthy(msg:find("this client is closed", 1, true), msg)
  end)

  it("refuses a 2xx body too costly to decode before Lua builds it", function()
    -- 64 MiB (the default max_response_bytes) of small nested arrays: valid
    -- JSON that cjson would turn into ~2 GB of tables
    local body = '{"data":[' .. string.rep("[[]],", 13421770) .. '[]]}'
    assert.is_true(#body > 64 * 1000 * 1000 and #body <= 64 * 1024 * 1024)
    local t0 = now()
    local ok, why = core.json_object_ok(body)
    assert.is_false(ok)
    assert.are.equal("the response body is too costly to decode: more than 201326592 bytes estimated "
                     .. "(the cap is 3 x max_response_bytes)", why)
    assert.is_true(now() - t0 < 3, "took " .. (now() - t0))
    -- an answer of floats of the same size is fine
    body = nil
    collectgarbage()
    local floats = string.rep("-0.0123456789,", 4793490)
    ok = core.json_object_ok('{"data":[' .. floats .. '1]}')
    assert.is_true(ok)
  end)
end)

describe("llmrelay client option ranges", function()
  it("refuses an opts.timeout the C core would wrap", function()
    local c = llmrelay.new { endpoints = { { base_url = "http://127.0.0.1:1/v1" } } }
    for _, v in ipairs { 1e300, 2 ^ 63, 1000001 } do
      local ok, msg = pcall(function() c:chat_completion(req(), { timeout = v }) end)
      assert.is_false(ok)
      assert.truthy(msg:find("chat_completion: opts.timeout must be at most 1000000 seconds", 1, true), msg)
    end
    c:close()
  end)
end)
