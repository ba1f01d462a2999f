-- Rate limits: priorities, waiting without a slot, failing fast past a
-- deadline, pacing to the server's published limit.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local now = require("llmrelay.core").now

local function req(text, model)
  return { model = model or "m", messages = { { role = "user", content = text } } }
end

describe("rate limits", function()
  after_each(function() mock.stop_all() end)

  it("serves higher priorities first, FIFO within a priority", function()
    local m = mock.start { name = "slow", latency_ms = 60 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } }, concurrency = 1 }
    local order = {}
    local function go(name, prio)
      llmrelay.spawn(function()
        assert(client:chat_completion(req(name), { priority = prio }))
        order[#order + 1] = name
      end)
    end
    llmrelay.run(function()
      go("first", 0) -- takes the only slot
      llmrelay.sleep(0.01)
      go("low", -3)
      go("normal-1", 0)
      go("high", 5)
      go("normal-2", nil)
    end)
    assert.are.same({ "first", "high", "normal-1", "normal-2", "low" }, order)
    assert.has_error(function() client:chat_completion(req("x"), { priority = 11 }) end,
      "chat_completion: opts.priority must be a whole number from -10 to 10")
  end)

  it("a request waiting out a throttle holds no slot: others proceed elsewhere", function()
    local a = mock.start { name = "a", throttle_first = 1, throttle_ms = 1500 }
    local b = mock.start { name = "b" }
    local throttled = false
    local client = llmrelay.new {
      endpoints = { { base_url = a.url, name = "a", models = { "only-a" } },
                    { base_url = b.url, name = "b", models = { "any" } } },
      concurrency = 1,
      on_event = function(ev)
        if ev.type == "throttle" and ev.endpoint == "a" then throttled = true end
      end,
    }
    local t0, waited_at, a_asked = now(), nil, nil
    local order = {}
    llmrelay.run(function()
      llmrelay.spawn(function()
        assert(client:chat_completion(req("patient", "only-a")))
        waited_at = now() - t0
        order[#order + 1] = "patient"
      end)
      llmrelay.spawn(function()
        -- ordered by the event, not by a sleep: go once a's 429 came back
        while not throttled do llmrelay.sleep(0.005) end
        for i = 1, 5 do assert(client:chat_completion(req("quick" .. i, "any"))) end
        a_asked = a:stats().requests
        order[#order + 1] = "quick"
      end)
    end)
    -- had the waiting request kept the only slot, the quick ones would end after it
    assert.are.same({ "quick", "patient" }, order)
    assert.are.equal(1, a_asked, "a was asked again before the quick requests ended")
    assert.is_true(waited_at >= 1.5, "the throttled one finished at " .. waited_at)
    assert.are.equal(5, b:stats().requests)
    assert.are.equal(2, a:stats().requests)
  end)

  it("fails fast with rate_limited when the throttle outlasts the deadline", function()
    local m = mock.start { name = "a", throttle_first = 1, throttle_ms = 30000 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local t0 = now()
    local resp, err = client:chat_completion(req("x"), { deadline = 2 })
    assert.is_nil(resp)
    assert.are.equal("rate_limited", err.kind)
    assert.is_true(err.retry_after >= 29 and err.retry_after <= 33, tostring(err.retry_after))
    assert.is_true(now() - t0 < 0.5)
  end)

  it("fails fast with circuit_open when every breaker is open past the deadline", function()
    local client = llmrelay.new {
      endpoints = { { base_url = "http://127.0.0.1:" .. mock.free_port() .. "/v1" } },
      breaker = { failure_threshold = 1, cooldown = 60 },
      retry = { max_attempts = 3, max_retry_after = 10 },
    }
    local t0 = now()
    local _, first = client:chat_completion(req("x"))
    -- the breaker opened; the next attempt is 60 s away, past max_retry_after: give up now
    assert.are.equal("circuit_open", first.kind)
    assert.are.equal(1, first.attempts)
    assert.is_true(now() - t0 < 0.5)
    t0 = now()
    local resp, err = client:chat_completion(req("y"), { deadline = 5 })
    assert.is_nil(resp)
    assert.are.equal("circuit_open", err.kind)
    assert.are.equal(0, err.attempts)
    assert.is_true(err.retry_after > 50)
    assert.is_true(now() - t0 < 0.5)
  end)

  it("adapts its concurrency to a server that publishes no limits: no 429 storm, nothing lost", function()
    local m = mock.start { name = "quiet", rps = 50, burst = 5, rl_headers = "retry-after", latency_ms = 100 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } }, concurrency = 50 }
    local list = {}
    for i = 1, 100 do list[i] = req("a" .. i) end
    local _, summary = client:batch(list, { concurrency = 50 })
    assert.are.equal(100, summary.ok)
    -- the opening burst of 50 meets a bucket of 5; after that the limit keeps 429s rare
    local r429 = m:stats().status["429"] or 0
    assert.is_true(r429 < 100, "429 answers: " .. r429)
    local limit = client:status()[1].adaptive_limit
    assert.is_true(limit ~= nil and limit < 25, "adaptive limit " .. tostring(limit))
  end)

  it("learns the rate of a pool that sends only Retry-After: one endpoint probes, the others take its estimate", function()
    local mocks, eps = {}, {}
    for i = 1, 3 do
      mocks[i] = mock.start { name = "bare" .. i, rps = 100, burst = 25, rl_headers = "retry-after" }
      eps[i] = { base_url = mocks[i].url, name = "b" .. i }
    end
    local client = llmrelay.new { endpoints = eps, concurrency = 50 }
    local list = {}
    for i = 1, 900 do list[i] = req("r" .. i) end
    local _, summary = client:batch(list, { concurrency = 50 })
    assert.are.equal(900, summary.ok)
    local r429, probed = 0, 0
    for i, m in ipairs(mocks) do
      r429 = r429 + (m:stats().status["429"] or 0)
      local st = client:status()[i]
      -- every endpoint ends paced near the server's 100 req/s, never above it
      assert.is_true(st.learnt_rate and st.learnt_rate > 80 and st.learnt_rate <= 101,
                     st.name .. " learnt " .. tostring(st.learnt_rate))
      if st.learnt_from == "own" then probed = probed + 1 end
      assert.is_true(st.learnt_from == "own" or st.learnt_from == "sibling", tostring(st.learnt_from))
    end
    -- one endpoint paid a second pause to measure the rate; the others took its estimate
    assert.are.equal(1, probed)
    -- each 429 pause also turns away what was in flight to that endpoint (about C/3)
    assert.is_true(r429 <= 100, "429 answers: " .. r429)
  end)

  it("learns the rate of a pool whose 429s carry no hint at all: paced, not slept on", function()
    -- 3 x 100 req/s (burst 25), bare 429s; the sleep-based backoff of old
    -- (0.5 s, 1 s, 2 s, ... per run of 429s) reached a quarter of the capacity
    local mocks, eps = {}, {}
    for i = 1, 3 do
      mocks[i] = mock.start { name = "none" .. i, rps = 100, burst = 25, rl_headers = "none" }
      eps[i] = { base_url = mocks[i].url, name = "n" .. i }
    end
    local zero_delay = 0
    local client = llmrelay.new { endpoints = eps, concurrency = 50, retry = { max_attempts = 10 },
                                  on_event = function(ev)
                                    if ev.type == "throttle" and ev.delay == 0 then zero_delay = zero_delay + 1 end
                                  end }
    local list = {}
    for i = 1, 1500 do list[i] = req("n" .. i) end
    local t0 = now()
    local _, summary = client:batch(list, { concurrency = 50 })
    local dt = now() - t0
    assert.are.equal(1500, summary.ok)
    local attempts, r429 = 0, 0
    for _, m in ipairs(mocks) do
      local st = m:stats()
      attempts, r429 = attempts + st.requests, r429 + (st.status["429"] or 0)
    end
    local share = 1500 / dt / (300 + 75 / dt)
    -- loose bars for a busy machine (measured alone: about 0.99, and 40-80 429s): the
    -- opening burst meets the empty buckets with up to C = 50 in flight, after that 429s are rare
    assert.is_true(share >= 0.7, ("%.2f of the capacity in %.2f s"):format(share, dt))
    assert.is_true(r429 <= 50 + 0.03 * attempts, ("429s: %d of %d attempts"):format(r429, attempts))
    assert.are.equal(r429, zero_delay) -- each 429 is a throttle event with no pause
    local metrics = client:metrics()
    for i, st in ipairs(client:status()) do
      assert.is_true(st.learnt_rate and st.learnt_rate > 50 and st.learnt_rate < 250,
                     st.name .. " learnt " .. tostring(st.learnt_rate))
      assert.is_true(st.learnt_from == "own" or st.learnt_from == "sibling", tostring(st.learnt_from))
      assert.are.equal("bare", st.learnt_mode)
      assert.is_true(st.learnt_burst >= 20 and st.learnt_burst <= 60, tostring(st.learnt_burst))
      assert.is_nil(st.throttled_for)
      assert.is_truthy(metrics:find(('llmrelay_learnt_rate{endpoint="n%d"} '):format(i), 1, true))
    end
  end)

  -- Two endpoints answer at once, the third 40 ms late; each holds a bucket of 25. When the
  -- first two run dry, every request used to flow to the late one (nothing it said yet held
  -- them back) and meet its empty bucket: 20-25 429s there. Now an endpoint that has not
  -- answered carries no more than its siblings did at their first answer, and (bare 429s)
  -- a sibling as busy as the first refused one is paced from that one's bucket.
  for _, mode in ipairs { "full", "none" } do
    it(("does not pour the pool's overflow into the endpoint whose answers are late (%s hints)"):format(mode), function()
      local mocks, eps = {}, {}
      for i = 1, 3 do
        mocks[i] = mock.start { name = mode .. "late" .. i, rps = 50, burst = 25, rl_headers = mode,
                                latency_ms = i == 3 and 40 or nil }
        eps[i] = { base_url = mocks[i].url, name = "l" .. i }
      end
      local client = llmrelay.new { endpoints = eps, concurrency = 45, retry = { max_attempts = 10 } }
      local list = {}
      for i = 1, 150 do list[i] = req("l" .. i) end
      local _, summary = client:batch(list, { concurrency = 45 })
      assert.are.equal(150, summary.ok)
      local late = mocks[3]:stats()
      local r429 = late.status["429"] or 0
      -- measured before: 20 (full), 33-42 (none) of 70-90; now 0 of about 50 in both
      assert.is_true(r429 <= 5,
                     ("the late endpoint answered 429 to %d of %d"):format(r429, late.requests))
      if mode == "none" then
        local st = client:status()[3]
        assert.are.equal("bare", st.learnt_mode)
      end
    end)
  end

  it("paces one endpoint to its published limit: --rps 20 --burst 5, 100 requests within 1.2x the ideal time", function()
    local m = mock.start { name = "paced", rps = 20, burst = 5 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local list = {}
    for i = 1, 100 do list[i] = req("p" .. i) end
    local t0 = now()
    local _, summary = client:batch(list, { concurrency = 20 })
    local dt = now() - t0
    local ideal = (100 - 5) / 20
    assert.are.equal(100, summary.ok)
    assert.is_true(dt <= 1.2 * ideal, ("took %.2f s, ideal %.2f s"):format(dt, ideal))
    local st = m:stats()
    -- the opening burst of 20 against a bucket of 5; none after it
    assert.is_true((st.status["429"] or 0) <= 20, "429 answers: " .. tostring(st.status["429"]))
  end)
end)
