-- What a fleet shares through Redis, seen from two clients of one pool in one
-- process (two members: each has its own state and its own Redis exchanges):
-- leases of a shared bucket, a throttle and an open breaker seen by the other
-- member, one half-open probe fleet-wide, the configured rpm shared, Redis
-- down / paused / password-protected. Real redis-server and mocks on 127.0.0.1.
local llmrelay = require "llmrelay"
local core = require "llmrelay.core"
local mock = require "spec.support.mock"
local server = require "spec.support.redis"

local function req(s)
  return { model = "m", messages = { { role = "user", content = s } } }
end

local function client(url, r, extra)
  local cfg = { endpoints = { { base_url = url, name = "only" } }, name = "fs", redis = r,
                retry = { max_attempts = 1 } }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return llmrelay.new(cfg)
end

-- runs the clients' batches side by side in one llmrelay.run scheduler
local function batches(list)
  local summaries = {}
  llmrelay.run(function()
    for k, item in ipairs(list) do
      llmrelay.spawn(function()
        local _, s = item[1]:batch(item[2], { concurrency = item[3] or 10 })
        summaries[k] = s
      end)
    end
  end)
  return summaries
end

describe("a fleet through Redis (two members in one process)", function()
  local r
  setup(function() r = server.start() end)
  teardown(function()
    if r then r:stop() end
    mock.stop_all()
  end)
  before_each(function() r:cli("FLUSHALL") end)

  it("shares one endpoint's published budget: two members together stay within it", function()
    local m = mock.start { name = "fs-budget", rps = 20, burst = 5, rl_headers = "full" }
    local a, b = client(m.url, r.url, { retry = { max_attempts = 10 } }), client(m.url, r.url, { retry = { max_attempts = 10 } })
    local ra, rb = {}, {}
    for k = 1, 40 do ra[k], rb[k] = req("a" .. k), req("b" .. k) end
    local t0 = core.now()
    local s = batches { { a, ra }, { b, rb } }
    local dt = core.now() - t0
    assert.equal(40, s[1].ok)
    assert.equal(40, s[2].ok)
    local st = m:stats()
    -- 80 requests through a bucket of 5 at 20/s: about 3.75 s, few 429s (each member alone
    -- would believe it owns the whole budget and earn many)
    assert.is_true(dt > 3, "took " .. dt)
    assert.is_true((st.status["429"] or 0) <= 8, "429s: " .. tostring(st.status["429"]))
    local sa, sb = a:status().redis, b:status().redis
    assert.is_true(sa.up and sb.up)
    assert.equal(2, sa.members)
    assert.is_true(sa.round_trips > 0 and sa.round_trips < 80, "round trips " .. sa.round_trips)
    a:close(); b:close()
    m:stop()
  end)

  it("shows a pause one member was asked for to the other at once", function()
    local m = mock.start { name = "fs-thr", throttle_first = 1, throttle_ms = 3000 }
    local a, b = client(m.url, r.url), client(m.url, r.url)
    assert.is_nil(b:status()[1].throttled_for)
    local res, err = a:chat_completion(req("x"))
    assert.is_nil(res)
    assert.equal("rate_limited", err.kind)
    local t0 = core.now()
    local thr = b:status()[1].throttled_for
    assert.is_true(core.now() - t0 < 0.1)
    assert.is_true(thr and thr > 2 and thr <= 3, "b sees a pause of " .. tostring(thr))
    -- b does not send inside the pause: its request waits for it (or its deadline)
    local _, err2 = b:chat_completion(req("y"), { deadline = 0.5 })
    assert.equal(1, m:stats().requests)
    assert.truthy(err2)
    a:close(); b:close()
    m:stop()
  end)

  it("opens the breaker for every member, and lets one probe through after the cool-down", function()
    -- three failures, then answers that take 0.4 s: the probe's answer comes 0.4 s after it went
    local m = mock.start { name = "fs-dead", fail_first = 3, latency_ms = 400 }
    local cfg = { breaker = { failure_threshold = 3, cooldown = 1, max_cooldown = 1 } }
    local a, b = client(m.url, r.url, cfg), client(m.url, r.url, cfg)
    for k = 1, 3 do a:chat_completion(req("f" .. k)) end
    assert.equal("open", a:status()[1].state)
    local sb = b:status()[1]
    assert.equal("open", sb.state)
    assert.is_true(sb.open_for > 0.5)
    assert.equal(3, m:stats().requests)
    -- after the cool-down both send at once: one probe goes, and the other request only
    -- once the probe's success closed the breaker for the fleet
    core.sleep(1.1)
    local done = {}
    local t0 = core.now()
    llmrelay.run(function()
      for k, c in ipairs { a, b } do
        llmrelay.spawn(function()
          local res = c:chat_completion(req("p" .. k))
          done[#done + 1] = { ok = res ~= nil, at = core.now() - t0 }
        end)
      end
    end)
    assert.equal(2, #done)
    assert.is_true(done[1].ok and done[2].ok)
    table.sort(done, function(x, y) return x.at < y.at end)
    assert.is_true(done[2].at - done[1].at > 0.3, string.format("answers at %.2f and %.2f s", done[1].at, done[2].at))
    assert.equal(5, m:stats().requests)
    a:close(); b:close()
    m:stop()
  end)

  it("shares a configured rpm: two members together go at its rate", function()
    local m = mock.start { name = "fs-rpm" }
    -- rpm 120: 2 per second, a bucket of 20; each member alone would send its 15 at once
    local eps = { { base_url = m.url, name = "only", rpm = 120 } }
    local a = llmrelay.new { endpoints = eps, name = "fs", redis = r.url }
    local b = llmrelay.new { endpoints = eps, name = "fs", redis = r.url }
    local ra, rb = {}, {}
    for k = 1, 15 do ra[k], rb[k] = req("a" .. k), req("b" .. k) end
    local t0 = core.now()
    local s = batches { { a, ra }, { b, rb } }
    local dt = core.now() - t0
    assert.equal(15, s[1].ok)
    assert.equal(15, s[2].ok)
    assert.is_true(dt > 3.5, "30 requests through a shared bucket of 20 at 2/s took " .. dt)
    a:close(); b:close()
    m:stop()
  end)

  it("shares a configured tpm: two members together stay within its token bucket", function()
    local m = mock.start { name = "fs-tpm" }
    -- tpm 60000: 1000 tokens per second, a bucket of 10000; each request is estimated at
    -- about 1000 tokens (max_tokens), so each member's 7 fit its own bucket at once
    local eps = { { base_url = m.url, name = "only", tpm = 60000 } }
    local a = llmrelay.new { endpoints = eps, name = "fs", redis = r.url }
    local b = llmrelay.new { endpoints = eps, name = "fs", redis = r.url }
    local ra, rb = {}, {}
    for k = 1, 7 do
      ra[k], rb[k] = req("a" .. k), req("b" .. k)
      ra[k].max_tokens, rb[k].max_tokens = 1000, 1000
    end
    local t0 = core.now()
    local s = batches { { a, ra }, { b, rb } }
    local dt = core.now() - t0
    assert.equal(7, s[1].ok)
    assert.equal(7, s[2].ok)
    assert.is_true(dt > 2.5, "14 requests of ~1000 tokens through a shared bucket of 10000 at 1000/s took " .. dt)
    a:close(); b:close()
    m:stop()
  end)

  it("shares the retry budget: one member's retries leave the other less to retry with", function()
    local m = mock.start { name = "fs-500", fail_rate = 1 }
    -- short backoff: the whole case stays well inside the budget's 10 s window
    local cfg = { retry = { max_attempts = 3, budget = 0.2, base_delay = 0.01, max_delay = 0.02 },
                  breaker = { failure_threshold = 1000, min_calls = 1000 } }
    local a = client(m.url, r.url, cfg)
    for k = 1, 20 do a:chat_completion(req("a" .. k)) end
    a:status() -- its last counts go to the fleet (a member tells them at its next exchange)
    -- a spent its budget: 20 first attempts and about 10 + 0.2 x 20 retries (not the 40 its
    -- attempts allowed; a little more when a second of its window has passed)
    local sent = m:stats().requests
    assert.equal(34, sent)
    -- b alone would retry 4 times (its own budget is untouched); the fleet's leaves it at most one
    local b = client(m.url, r.url, { retry = { max_attempts = 5, budget = 0.2, base_delay = 0.01, max_delay = 0.02 },
                                    breaker = { failure_threshold = 1000, min_calls = 1000 } })
    local _, err = b:chat_completion(req("b"))
    assert.truthy(err)
    assert.is_true(m:stats().requests - sent <= 2, "b sent " .. (m:stats().requests - sent) .. " attempts")
    assert.matches("retry budget", tostring(err), 1, true)
    a:close(); b:close()
    m:stop()
  end)

  it("runs on local state when Redis is not there, without waiting on it", function()
    local m = mock.start { name = "fs-down" }
    local port = mock.free_port()
    local a = client(m.url, "redis://127.0.0.1:" .. port)
    local t0 = core.now()
    for k = 1, 20 do assert.truthy(a:chat_completion(req("d" .. k))) end
    assert.is_true(core.now() - t0 < 2)
    local st = a:status().redis
    assert.is_false(st.up)
    assert.is_true(st.errors >= 1)
    assert.matches("redis_up 0", a:metrics(), 1, true)
    a:close()
    m:stop()
  end)

  it("bounds every exchange by the timeout when Redis stops answering", function()
    local m = mock.start { name = "fs-slow" }
    local a = client(m.url, { url = r.url, timeout = 0.05 })
    assert.truthy(a:chat_completion(req("warm")))
    r:pause()
    local ok, e = pcall(function()
      local t0 = core.now()
      for k = 1, 10 do assert.truthy(a:chat_completion(req("s" .. k))) end
      return core.now() - t0
    end)
    r:resume()
    assert.is_true(ok, tostring(e))
    assert.is_true(e < 1.5, "10 requests with Redis paused took " .. e)
    assert.is_false(a:status().redis.up and a:status().redis.errors == 0)
    a:close()
    m:stop()
  end)

  it("keeps the password out of status, metrics and errors", function()
    local rp = server.start { requirepass = "s3cr3t-fleet-pw" }
    local m = mock.start { name = "fs-pw" }
    local ok_c = client(m.url, "redis://:s3cr3t-fleet-pw@127.0.0.1:" .. rp.port)
    assert.truthy(ok_c:chat_completion(req("p")))
    local st = ok_c:status().redis
    assert.is_true(st.up)
    assert.equal("redis://:***@127.0.0.1:" .. rp.port, st.url)
    local bad = client(m.url, "redis://:wrong-pw-xyz@127.0.0.1:" .. rp.port)
    assert.truthy(bad:chat_completion(req("q")))
    local sb = bad:status().redis
    assert.is_false(sb.up)
    for _, text in ipairs { require("cjson").encode(st), ok_c:metrics(), require("cjson").encode(sb), bad:metrics() } do
      assert.is_nil(text:find("s3cr3t-fleet-pw", 1, true))
      assert.is_nil(text:find("wrong-pw-xyz", 1, true))
    end
    ok_c:close(); bad:close()
    m:stop()
    rp:stop()
  end)
end)
