-- client:batch: every request ends exactly once, in request order, with a
-- summary; in and outside llmrelay.run.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local now = require("llmrelay.core").now

local function reqs(n, prefix)
  local t = {}
  for i = 1, n do t[i] = { model = "m", messages = { { role = "user", content = (prefix or "r") .. i } } } end
  return t
end

describe("client:batch", function()
  after_each(function() mock.stop_all() end)

  it("returns results in request order with a summary", function()
    local m = mock.start { name = "one" }
    local client = llmrelay.new { endpoints = { { base_url = m.url, name = "one" } } }
    local seen, progress = {}, {}
    local results, summary = client:batch(reqs(120), {
      concurrency = 16,
      on_result = function(i, res) seen[#seen + 1] = i; assert.is_true(res.ok) end,
      on_progress = function(p) progress[#progress + 1] = p end,
    })
    assert.are.equal(120, #results)
    for i = 1, 120 do
      assert.is_true(results[i].ok)
      assert.are.equal("echo: r" .. i, results[i].response.choices[1].message.content)
      assert.are.equal("one", results[i].response._llmrelay.endpoint)
    end
    table.sort(seen)
    for i = 1, 120 do assert.are.equal(i, seen[i]) end -- each exactly once
    assert.are.equal(120, summary.total)
    assert.are.equal(120, summary.ok)
    assert.are.equal(0, summary.failed)
    assert.are.equal(120, summary.attempts)
    assert.are.equal(0, summary.retries)
    assert.is_true(summary.usage.prompt_tokens > 0 and summary.usage.completion_tokens > 0)
    assert.are.equal(summary.usage.prompt_tokens + summary.usage.completion_tokens, summary.usage.total_tokens)
    assert.are.same({ ok = 120, failed = 0, attempts = 120, state = "closed" }, summary.endpoints.one)
    local last = progress[#progress]
    assert.are.equal(120, last.done)
    assert.are.equal(120, last.total)
    assert.are.equal(120, m:stats().requests)
  end)

  it("keeps opts.concurrency requests in flight, never more", function()
    -- counted at the mock, not timed: a loaded machine makes this slower, never wrong
    local inflight = require "spec.support.inflight"
    local m = mock.start { name = "slow", latency_ms = 300 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } }, concurrency = 64 }
    local w = inflight.watch(m)
    local _, summary = client:batch(reqs(30), { concurrency = 10 })
    local peak, samples = w:stop()
    assert.are.equal(30, summary.ok)
    -- the mock held 10 at once (not one at a time), and never more
    assert.are.equal(10, peak, ("peak %d over %d samples"):format(peak, samples))
    -- HTTP/1.1 without pipelining: 11 at once would need an 11th connection
    assert.is_true(m:stats().connections <= 10)
  end)

  it("serves every request of a faulty pool", function()
    local flaky = mock.start { name = "flaky", fail_rate = 0.5 }
    local healthy = mock.start { name = "healthy" }
    local client = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1", name = "dead" },
                    { base_url = flaky.url, name = "flaky" }, { base_url = healthy.url, name = "healthy" } },
    }
    local results, summary = client:batch(reqs(400), { concurrency = 32 })
    assert.are.equal(400, summary.ok)
    for i = 1, 400 do assert.is_true(results[i].ok) end
    assert.is_true(summary.retries > 0)
    assert.are.equal(summary.attempts, summary.total + summary.retries)
    assert.are.equal("open", summary.endpoints.dead.state)
  end)

  it("records bad requests as errors and runs the rest", function()
    local m = mock.start { name = "m", bad_marker = "POISON" }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local list = reqs(5)
    list[2] = "not a table"
    list[3] = { model = "m" } -- no messages
    list[4] = { model = "m", messages = { { role = "user", content = "POISON" } } }
    local results, summary = client:batch(list)
    assert.is_true(results[1].ok and results[5].ok)
    assert.are.equal("invalid_request", results[2].error.kind)
    assert.truthy(results[2].error.message:find("requests[2]", 1, true))
    assert.are.equal("invalid_request", results[3].error.kind)
    assert.are.equal("invalid_request", results[4].error.kind)
    assert.are.equal(400, results[4].error.status)
    assert.are.equal(2, summary.ok)
    assert.are.equal(3, summary.failed)
    assert.are.equal(3, m:stats().requests)
  end)

  it("waits out 429s and finishes every request", function()
    local m = mock.start { name = "limited", rps = 200, burst = 10 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local _, summary = client:batch(reqs(100), { concurrency = 20 })
    assert.are.equal(100, summary.ok)
    local r429 = m:stats().status["429"] or 0
    -- the opening burst of 20 meets a bucket of 10; after that the client goes at the
    -- server's pace (x-ratelimit-limit-requests): at most that burst earns 429s (a client
    -- that released its waiting requests all at once earned about 90 here)
    assert.is_true(r429 > 0 and r429 <= 20, "429 answers: " .. r429)
    local st = client:status()[1]
    assert.are.equal(12000, st.server_rpm)
    assert.is_number(st.remaining)
  end)

  it("yields inside llmrelay.run, so other coroutines go on", function()
    local m = mock.start { name = "slow", latency_ms = 100 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local ticks, summary = 0, nil
    llmrelay.run(function()
      llmrelay.spawn(function()
        for _ = 1, 5 do llmrelay.sleep(0.02); ticks = ticks + 1 end
      end)
      _, summary = client:batch(reqs(30), { concurrency = 10 })
    end)
    assert.are.equal(30, summary.ok)
    assert.are.equal(5, ticks)
  end)

  it("raises an on_result error after every request has ended", function()
    local m = mock.start { name = "m" }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local calls = 0
    assert.has_error(function()
      client:batch(reqs(10), { on_result = function() calls = calls + 1; if calls == 1 then error("bad callback") end end })
    end, "bad callback")
    assert.are.equal(10, calls)
    assert.are.equal(0, client:pending())
  end)

  it("raises any error value from on_result / on_progress (error(nil), false, a table)", function()
    local m = mock.start { name = "m" }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local tbl = { code = 7 }
    for _, case in ipairs { { "on_result", nil }, { "on_result", false }, { "on_result", tbl },
                            { "on_progress", nil } } do
      local name, value = case[1], case[2]
      local calls = 0
      local ok, err = pcall(client.batch, client, reqs(10), {
        [name] = function() calls = calls + 1; if calls == 1 then error(value) end end,
      })
      assert.is_false(ok, name .. " raising " .. tostring(value) .. " was swallowed")
      assert.are.equal(value, err)
      if name == "on_result" then assert.are.equal(10, calls) end
      assert.are.equal(0, client:pending())
    end
    assert.are.equal(40, m:stats().requests)
  end)

  it("the engine defaults to the client's concurrency", function()
    local m = mock.start { name = "slow", latency_ms = 100 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } }, concurrency = 5 }
    local i, got = 0, 0
    local t0 = now()
    local summary = require("llmrelay.batch").run(client, function()
      i = i + 1
      if i <= 10 then return { key = i, body = '{"messages":[{"role":"user","content":"x"}]}' } end
    end, function() got = got + 1 end)
    assert.are.equal(10, summary.ok)
    assert.are.equal(10, got)
    assert.is_true(now() - t0 >= 0.2) -- two waves of five
  end)

  it("rejects bad options by name", function()
    local client = llmrelay.new { endpoints = { { base_url = "http://127.0.0.1:1/v1" } } }
    assert.has_error(function() client:batch({}, { concurency = 3 }) end, "batch: unknown option 'concurency'")
    assert.has_error(function() client:batch({}, { concurrency = 0 }) end, "batch: opts.concurrency must be a positive integer")
    assert.has_error(function() client:batch("x") end)
    local results, summary = client:batch({})
    assert.are.same({}, results)
    assert.are.equal(0, summary.total)
  end)
end)
