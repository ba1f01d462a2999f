-- llmrelay.run / spawn / sleep: requests yield inside the scheduler, so many
-- coroutines share one event loop; outside it the same calls block.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local inflight = require "spec.support.inflight"
local now = require("llmrelay.core").now

local function req(text)
  return { model = "m", messages = { { role = "user", content = text } } }
end

describe("llmrelay.run", function()
  after_each(function() mock.stop_all() end)

  it("returns the function's results and waits for every spawned coroutine", function()
    local finished = {}
    local a, b, c = llmrelay.run(function(x)
      for i = 1, 3 do
        llmrelay.spawn(function(k)
          llmrelay.sleep(0.05 * k)
          finished[#finished + 1] = k
        end, i)
      end
      return x, nil, "end"
    end, "arg")
    assert.are.equal("arg", a)
    assert.is_nil(b)
    assert.are.equal("end", c)
    assert.are.same({ 1, 2, 3 }, finished)
  end)

  it("runs 200 coroutines of one request each at once: the endpoint holds all 200 together", function()
    -- counted at the mock, not timed: a loaded machine makes this slower, never wrong
    local m = mock.start { name = "a", latency_ms = 1000 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } }, concurrency = 256 }
    local ok, texts = 0, {}
    local w = inflight.watch(m)
    llmrelay.run(function()
      for i = 1, 200 do
        llmrelay.spawn(function()
          local resp, err = client:chat_completion(req("c" .. i))
          assert(resp, err)
          texts[i] = resp.choices[1].message.content
          ok = ok + 1
        end)
      end
    end)
    local peak, samples = w:stop()
    assert.are.equal(200, ok)
    assert.are.equal("echo: c137", texts[137])
    -- one at a time would hold 1; 200 coroutines sharing one loop hold all 200
    assert.are.equal(200, peak, ("peak %d over %d samples"):format(peak, samples))
    assert.are.equal(200, m:stats().requests)
  end)

  it("sleeps without blocking the other coroutines", function()
    local trace, slept = {}, {}
    local function sleeper(name, seconds)
      llmrelay.spawn(function()
        trace[#trace + 1] = "sleep " .. name
        local t = now()
        llmrelay.sleep(seconds)
        slept[name] = now() - t
        trace[#trace + 1] = name
      end)
    end
    llmrelay.run(function()
      sleeper("slow", 0.2)
      sleeper("fast", 0.05)
      sleeper("slow2", 0.2)
    end)
    -- all three slept at once (a blocking sleep would wake each before the
    -- next one starts), and woke in the order of their deadlines
    assert.are.same({ "sleep slow", "sleep fast", "sleep slow2", "fast", "slow", "slow2" }, trace)
    for name, s in pairs { slow = 0.2, fast = 0.05, slow2 = 0.2 } do
      assert.is_true(slept[name] >= s, name .. " slept " .. slept[name])
    end
  end)

  it("blocks outside a scheduler", function()
    local t0 = now()
    llmrelay.sleep(0.1)
    assert.is_true(now() - t0 >= 0.1)
  end)

  it("lets requests and sleeps interleave: a sleeper wakes while a request is in flight", function()
    local m = mock.start { name = "slow", latency_ms = 1000 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local order, pending_at_wake, answered_at = {}, nil, nil
    local t0 = now()
    llmrelay.run(function()
      llmrelay.spawn(function()
        llmrelay.sleep(0.05)
        pending_at_wake = client:pending()
        order[#order + 1] = "woke"
      end)
      assert(client:chat_completion(req("x")))
      answered_at = now() - t0
      order[#order + 1] = "answered"
    end)
    assert.are.same({ "woke", "answered" }, order)
    assert.are.equal(1, pending_at_wake) -- the request was still in flight
    assert.is_true(answered_at >= 1)
  end)

  it("reports an error of a spawned coroutine after the others finished", function()
    local sibling_done = false
    local ok, err = pcall(llmrelay.run, function()
      llmrelay.spawn(function() llmrelay.sleep(0.05); error("boom in a coroutine") end)
      llmrelay.spawn(function() llmrelay.sleep(0.1); sibling_done = true end)
    end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("boom in a coroutine", 1, true))
    assert.is_true(sibling_done)
  end)

  it("treats a plain coroutine.yield as letting the others run", function()
    local trace = {}
    llmrelay.run(function()
      llmrelay.spawn(function() trace[#trace + 1] = "a1"; coroutine.yield(); trace[#trace + 1] = "a2" end)
      llmrelay.spawn(function() trace[#trace + 1] = "b1"; coroutine.yield(); trace[#trace + 1] = "b2" end)
    end)
    assert.are.same({ "a1", "b1", "a2", "b2" }, trace)
  end)

  it("blocks (instead of yielding) inside a coroutine of the user's own", function()
    local m = mock.start { name = "own" }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local text
    llmrelay.run(function()
      local co = coroutine.wrap(function() return client:chat("inner", { model = "m" }) end)
      text = co()
    end)
    assert.are.equal("echo: inner", text)
  end)

  it("refuses spawn outside run and run inside run", function()
    assert.has_error(function() llmrelay.spawn(function() end) end,
      "llmrelay.spawn must be called inside llmrelay.run")
    local ok, err = pcall(llmrelay.run, function() llmrelay.run(function() end) end)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("already inside llmrelay.run", 1, true))
    assert.has_error(function() llmrelay.run("nope") end)
  end)

  it("drives transfers for a foreign event loop with client:step", function()
    local m = mock.start { name = "step", latency_ms = 50 }
    local client = llmrelay.new { endpoints = { { base_url = m.url } } }
    local result
    llmrelay.run(function()
      llmrelay.spawn(function() result = client:chat("stepped", { model = "m" }) end)
    end)
    assert.are.equal("echo: stepped", result)
    assert.is_true(client:step(0.01))
    assert.are.equal(0, client:pending())
  end)
end)
