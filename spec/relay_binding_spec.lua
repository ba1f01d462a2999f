-- core.relay and core.stream_decoder: the bare relay and the stream decoder as
-- an executor written in Lua (the OpenResty one) drives them, on simulated time.
-- No sockets: the spec plays the executor and reports what "happened".
local core = require "llmrelay.core"
local config = require "llmrelay.config"

local huge = math.huge

-- A relay over n endpoints (priority: endpoint 1 first, so picks are known).
local function relay(opts)
  opts = opts or {}
  local eps = {}
  for i = 1, opts.n or 2 do
    eps[i] = { base_url = "http://127.0.0.1:1/v1", name = "e" .. i, models = opts.models and opts.models[i] or nil }
    for k, v in pairs(opts.each or {}) do eps[i][k] = v end
  end
  local cfg = config.validate {
    endpoints = eps,
    strategy = opts.strategy or "priority",
    retry = opts.retry or { budget = false },
    breaker = opts.breaker,
    concurrency = opts.concurrency,
  }
  return core.relay(cfg, opts.now or 0)
end

-- poll() as a list of actions { id, endpoint, attempt, timeout }, and next_wake.
local function poll(rl, now)
  local out = {}
  local n, wake = rl:poll(now, out)
  local acts = {}
  for k = 0, n - 1 do
    acts[#acts + 1] = { id = out[4 * k + 1], endpoint = out[4 * k + 2], attempt = out[4 * k + 3],
                        timeout = out[4 * k + 4] }
  end
  return acts, wake
end

-- The one action of a poll.
local function poll1(rl, now)
  local acts, wake = poll(rl, now)
  assert.are.equal(1, #acts, "one action expected")
  return acts[1], wake
end

local function events(rl)
  return rl:events() or {}
end

local function find_event(evs, type_)
  for _, e in ipairs(evs) do
    if e.type == type_ then return e end
  end
end

describe("core.relay", function()
  it("hands out a send action for the endpoint it picked", function()
    local rl = relay { n = 2 }
    local id = rl:submit("m", 10)
    assert.are.equal(1, rl:active())
    local a, wake = poll1(rl, 0)
    assert.are.same({ id = id, endpoint = 1, attempt = 1, timeout = 600 }, a)
    assert.are.equal(huge, wake) -- only a report or a submit can help now
    assert.are.equal(1, rl:in_flight())
    assert.is_false(rl:is_probe(id))
    assert.are.equal(0, #poll(rl, 0))
    -- an attempt's timeout is the request's, cut by its deadline
    local id2 = rl:submit("m", 0, 5)
    assert.are.same({ id = id2, endpoint = 1, attempt = 1, timeout = 5 }, poll1(rl, 0))
    local id3 = rl:submit("m", 0, 5, 3)
    assert.are.same({ id = id3, endpoint = 1, attempt = 1, timeout = 3 }, poll1(rl, 0))
    rl:close()
  end)

  it("fails over at once after a 500, then finishes with the attempts counted", function()
    local rl = relay { n = 2 }
    local id = rl:submit("m", 10)
    poll1(rl, 0)
    local verdict, ep = rl:report(id, 0.1, 500)
    assert.are.equal("failure", verdict)
    assert.are.equal(1, ep)
    local a = poll1(rl, 0.1) -- the same instant: no backoff
    assert.are.same({ id = id, endpoint = 2, attempt = 2, timeout = 600 }, a)
    verdict, ep = rl:report(id, 0.25, 200, nil, true, nil, nil, false, 42)
    assert.are.equal("success", verdict)
    assert.are.equal(2, ep)
    a = poll1(rl, 0.25)
    assert.are.same({ id = id, endpoint = 0, attempt = 2, timeout = 0 }, a)
    local res = rl:result(id)
    assert.is_true(res.ok)
    assert.are.equal(2, res.attempts)
    assert.are.equal(200, res.status)
    assert.are.equal(2, res.endpoint)
    assert.is_near(0.15, res.latency, 1e-9)
    assert.is_nil(res.kind)
    assert.is_nil(rl:result(id)) -- handed over once; the id is free
    assert.are.equal(0, rl:active())
    assert.are.equal(0, rl:in_flight())
    local st = rl:status(0.3)
    assert.are.equal(1, st[1].failures)
    assert.are.equal(1, st[1].consecutive_failures)
    assert.are.equal(1, st[2].successes)
    assert.are.equal("closed", st[1].state)
    rl:close()
  end)

  it("a 2xx whose body is not what was asked for goes elsewhere, never back, and spares the breaker", function()
    local rl = relay { n = 2, retry = { budget = false, max_attempts = 5 }, breaker = { failure_threshold = 1 } }
    local id = rl:submit("m")
    poll1(rl, 0)
    assert.are.equal("neutral", (rl:report(id, 0.1, 200, nil, false, nil, "the response body is not a JSON object")))
    local a = poll1(rl, 0.1) -- at once, to the other endpoint
    assert.are.same({ 2, 2 }, { a.endpoint, a.attempt })
    rl:report(id, 0.2, 200, nil, false, nil, "the response body is not valid UTF-8 (byte 9)")
    a = poll1(rl, 0.2) -- no endpoint left that did not answer so: done, not a backoff
    assert.are.equal(0, a.endpoint)
    local res = rl:result(id)
    assert.is_false(res.ok)
    assert.are.equal("decode", res.kind)
    assert.are.equal(2, res.attempts)
    assert.are.equal("the response body is not valid UTF-8 (byte 9)", res.message)
    local st = rl:status(0.3)
    assert.are.same({ "closed", "closed" }, { st[1].state, st[2].state })
    assert.are.same({ 0, 0 }, { st[1].failures, st[2].failures })
    rl:close()
  end)

  it("a transport failure is named by its kind", function()
    local rl = relay { n = 2 }
    local id = rl:submit("m")
    poll1(rl, 0)
    assert.are.equal("failure", (rl:report(id, 0.1, nil, "connect", false, nil, "refused", true)))
    assert.are.equal(2, poll1(rl, 0.1).endpoint)
    rl:report(id, 0.2, 400, nil, true)
    poll1(rl, 0.2)
    local res = rl:result(id)
    assert.are.equal("invalid_request", res.kind)
    assert.are.equal(400, res.status)
    local other = rl:submit("m")
    poll1(rl, 0.3)
    assert.has_error(function() rl:report(other, 0.3, nil, "no_such_kind") end)
    assert.is_nil(rl:report(12345, 0.3, 200)) -- no such request: nothing
    -- the executor's words for what went wrong are the result's message
    local last = relay { n = 1, retry = { max_attempts = 1 } }
    id = last:submit("m")
    poll1(last, 0)
    last:report(id, 0.1, nil, "timeout", false, nil, "no answer within 600 s")
    poll1(last, 0.1)
    local r = last:result(id)
    assert.are.equal("timeout", r.kind)
    assert.are.equal("no answer within 600 s", r.message)
    assert.is_nil(r.status)
    last:close()
    rl:close()
  end)

  it("a failure that never reached a server fails over outside the retry budget", function()
    -- budget 0: ten retries a window and no more, unless the first attempt was never sent
    local function run(not_sent)
      local rl = relay { n = 2, retry = { budget = 0 }, breaker = { failure_threshold = 100 } }
      local failed_over = 0
      for k = 1, 15 do
        local id = rl:submit("m")
        poll1(rl, k * 0.01)
        rl:report(id, k * 0.01, nil, "connect", false, nil, "refused", not_sent)
        local a = poll1(rl, k * 0.01)
        if a.endpoint == 2 then
          failed_over = failed_over + 1
          rl:report(id, k * 0.01, 200, nil, true)
          poll1(rl, k * 0.01)
        else
          assert.is_truthy(rl:result(id).message:find("budget"))
        end
        rl:result(id)
      end
      rl:close()
      return failed_over
    end
    assert.are.equal(15, run(true))
    assert.are.equal(10, run(false))
  end)

  it("a stream that failed after its events reached the caller ends as stream_interrupted", function()
    local rl = relay { n = 2 }
    local id = rl:submit("m")
    poll1(rl, 0)
    -- committed: the caller has events already, no second answer
    rl:report(id, 0.1, 200, "server_error", false, nil, "error event", false, nil, true)
    local a = poll1(rl, 0.1)
    assert.are.equal(0, a.endpoint)
    local res = rl:result(id)
    assert.are.equal("stream_interrupted", res.kind)
    assert.are.equal(1, res.attempts)
    -- partial: events came but were not taken: retried elsewhere while attempts are left
    local one = relay { n = 2, retry = { max_attempts = 2, budget = false } }
    id = one:submit("m")
    poll1(one, 0)
    one:report(id, 0.1, 200, "server_error", false, nil, nil, false, nil, false, true)
    a = poll1(one, 0.1)
    assert.are.same({ id = id, endpoint = 2, attempt = 2, timeout = 600 }, a)
    one:report(id, 0.2, 200, "decode", false, nil, nil, false, nil, false, true)
    assert.are.equal(0, poll1(one, 0.2).endpoint)
    res = one:result(id)
    assert.are.equal("stream_interrupted", res.kind) -- the last attempt's events are what the caller gets
    assert.are.equal(2, res.attempts)
    one:close()
    rl:close()
  end)

  it("the usage an answer reports corrects the configured token budget", function()
    -- tpm 600: a bucket of 100 tokens, refilled at 10 a second
    local function second_waits(usage)
      local rl = relay { n = 1, each = { tpm = 600 } }
      local id = rl:submit("m", 100)
      poll1(rl, 0)
      rl:report(id, 0, 200, nil, true, nil, nil, false, usage)
      poll1(rl, 0)
      rl:result(id)
      id = rl:submit("m", 80)
      local acts, wake = poll(rl, 0)
      rl:close()
      return #acts == 0, wake
    end
    assert.is_false(second_waits(10)) -- 90 tokens given back
    local waits, wake = second_waits(nil) -- the estimate stands
    assert.is_true(waits)
    assert.is_true(wake >= 8 - 1e-9 and wake <= 9, "wake " .. wake)
  end)

  it("a pause beyond max_retry_after ends the request, saying when to try again", function()
    local rl = relay { n = 1 }
    local id = rl:submit("m")
    poll1(rl, 0)
    rl:report(id, 1, 429, nil, false, "Retry-After: 500\r\n")
    assert.are.equal(0, poll1(rl, 1).endpoint)
    local res = rl:result(id)
    assert.is_false(res.ok)
    assert.are.equal("rate_limited", res.kind)
    assert.are.equal(429, res.status)
    assert.is_true(res.retry_after >= 500 and res.retry_after <= 501, "retry_after " .. res.retry_after)
    rl:close()
  end)

  it("higher priorities go first when attempts are scarce", function()
    local rl = relay { n = 1, concurrency = 1 }
    local first = rl:submit("m")
    poll1(rl, 0)
    local low = rl:submit("m", 0, nil, nil, -5)
    local normal = rl:submit("m")
    local high = rl:submit("m", 0, nil, nil, 5)
    assert.are.equal(0, #poll(rl, 0)) -- the one slot is taken
    local order = {}
    local current = first
    for k = 1, 3 do
      rl:report(current, k, 200, nil, true)
      local acts = poll(rl, k)
      for _, a in ipairs(acts) do
        if a.endpoint > 0 then
          order[#order + 1] = a.id
          current = a.id
        end
      end
    end
    assert.are.same({ high, normal, low }, order)
    rl:close()
  end)

  it("a 429 with Retry-After throttles the endpoint, as status() shows", function()
    local rl = relay { n = 2 }
    rl:enable_events(true)
    local id = rl:submit("m")
    poll1(rl, 1)
    local verdict = rl:report(id, 1, 429, nil, false, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\n\r\n")
    assert.are.equal("neutral", verdict) -- says nothing about the endpoint's health
    local st = rl:status(1)
    assert.is_near(2, st[1].throttled_for, 1e-9)
    assert.are.equal(1, st[1].throttles)
    assert.are.equal(0, st[1].failures)
    assert.are.equal("closed", st[1].state)
    assert.is_nil(st[2].throttled_for)
    local e = find_event(events(rl), "throttle")
    assert.are.same({ type = "throttle", endpoint = 1, delay = 2, status = 429 }, e)
    -- the request goes elsewhere at once
    assert.are.same({ id = id, endpoint = 2, attempt = 2, timeout = 600 }, poll1(rl, 1))
    -- export says until when, for the other processes
    local _, _, _, throttled_until = rl:export(1, 1.5)
    assert.are.equal(3, throttled_until)
    assert.is_nil(rl:status(3.5)[1].throttled_for)
    rl:close()
  end)

  it("a throttled single endpoint makes the request wait for Retry-After", function()
    local rl = relay { n = 1 }
    local id = rl:submit("m")
    poll1(rl, 0)
    rl:report(id, 1, 429, nil, false, "retry-after: 2\r\n")
    local acts, wake = poll(rl, 1)
    assert.are.equal(0, #acts)
    assert.is_true(wake >= 3 and wake <= 3.2 + 1e-9, "wake " .. wake)
    assert.are.equal(0, #poll(rl, 2.9))
    local a = poll1(rl, wake)
    assert.are.same({ id = id, endpoint = 1, attempt = 2, timeout = 600 }, a)
    rl:close()
  end)

  it("unsend puts the request back, uncounted, and its endpoint aside until then", function()
    local rl = relay { n = 2 }
    rl:enable_events(true)
    local id = rl:submit("m", 10)
    assert.are.equal(1, poll1(rl, 0).endpoint)
    rl:unsend(id, 0, 5) -- the shared state refused endpoint 1 until 5
    assert.are.equal(0, rl:in_flight())
    assert.are.equal(1, rl:active())
    local st = rl:status(0)
    assert.are.equal(0, st[1].in_flight)
    assert.are.equal(0, st[1].requests)
    local a = poll1(rl, 0)
    assert.are.same({ id = id, endpoint = 2, attempt = 1, timeout = 600 }, a)
    assert.is_nil(find_event(events(rl), "failover")) -- nothing failed
    rl:report(id, 0.1, 200, nil, true)
    poll1(rl, 0.1)
    assert.are.equal(1, rl:result(id).attempts)
    -- endpoint 1 is first again once the time given is over
    local id2 = rl:submit("m")
    assert.are.equal(2, poll1(rl, 1).endpoint)
    local id3 = rl:submit("m")
    assert.are.equal(1, poll1(rl, 5).endpoint)
    -- an unsend with no time to wait: the same endpoint again, at once
    rl:unsend(id3, 5, 5)
    assert.are.same({ id = id3, endpoint = 1, attempt = 1, timeout = 600 }, poll1(rl, 5))
    rl:unsend(9999, 5, 5) -- an unknown id: nothing
    assert.are.equal(2, rl:in_flight())
    rl:cancel(id2, 5)
    rl:close()
  end)

  it("a result read before poll handed it out is not handed out again", function()
    local rl = relay { n = 1, models = { { "a" } } }
    local x = rl:submit("nope") -- no endpoint serves it: finished at once
    local y = rl:submit("nope")
    assert.are.equal("invalid_request", rl:result(x).kind)
    local z = rl:submit("a") -- reuses x's slot
    local acts = poll(rl, 0)
    local seen = {}
    for _, a in ipairs(acts) do
      assert.is_nil(seen[a.id], "request " .. a.id .. " handed out twice")
      seen[a.id] = a.endpoint
    end
    assert.are.equal(1, seen[z])
    assert.are.equal(0, seen[y])
    assert.are.equal("invalid_request", rl:result(y).kind)
    rl:report(z, 0.1, 200, nil, true)
    poll(rl, 0.1)
    assert.is_true(rl:result(z).ok)
    assert.are.equal(0, rl:active())
    rl:close()
  end)

  it("a request held back by shared state gives poll a wake time", function()
    local rl = relay { n = 1 }
    local id = rl:submit("m")
    poll1(rl, 0)
    rl:unsend(id, 0, 0.5)
    local acts, wake = poll(rl, 0)
    assert.are.equal(0, #acts)
    assert.are.equal(0.5, wake)
    assert.are.equal(1, poll1(rl, 0.5).endpoint)
    -- a deadline ends a held-back request on time
    local id2 = rl:submit("m", 0, nil, 0.8)
    poll1(rl, 0.6)
    rl:unsend(id2, 0.6, 5)
    acts, wake = poll(rl, 0.6)
    assert.are.equal(0.8, wake)
    local done = poll1(rl, 0.8)
    assert.are.equal(0, done.endpoint)
    assert.are.equal("deadline", rl:result(id2).kind)
    rl:close()
  end)

  it("reads HTTP-date hints against the wall clock, whatever clock the executor uses", function()
    local rl = relay { n = 1 }
    local id = rl:submit("m")
    poll1(rl, 0) -- the executor's clock starts at 0
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 10)
    rl:report(id, 0, 429, nil, false, "Retry-After: " .. date .. "\r\n")
    local st = rl:status(0)
    assert.is_true(st[1].throttled_for > 8 and st[1].throttled_for < 12, tostring(st[1].throttled_for))
    rl:close()
  end)

  it("an attempt put back unsent gives back what it took of the server's published budget", function()
    local rl = relay { n = 1 }
    local id = rl:submit("m")
    poll1(rl, 0)
    rl:report(id, 0.01, 200, nil, true,
              "x-ratelimit-limit-requests: 60\r\nx-ratelimit-remaining-requests: 3\r\nx-ratelimit-reset-requests: 10s\r\n")
    poll1(rl, 0.01)
    rl:result(id)
    assert.are.equal(3, rl:status(0.02)[1].remaining)
    id = rl:submit("m")
    poll1(rl, 0.02)
    assert.are.equal(2, rl:status(0.02)[1].remaining)
    rl:unsend(id, 0.02, 0.02)
    assert.are.equal(3, rl:status(0.02)[1].remaining)
    rl:close()
  end)

  it("an attempt put back unsent leaves no failover event behind", function()
    local rl = relay { n = 3 }
    rl:enable_events(true)
    local id = rl:submit("m")
    poll1(rl, 0)
    rl:report(id, 0.01, 500, nil, false) -- endpoint 1 failed: the retry fails over to 2
    local a = poll1(rl, 0.01)
    assert.are.equal(2, a.endpoint)
    rl:unsend(id, 0.01, 1) -- the shared state refused endpoint 2
    local b = poll1(rl, 0.01)
    assert.are.equal(3, b.endpoint)
    local failovers = {}
    for _, e in ipairs(events(rl)) do
      if e.type == "failover" then failovers[#failovers + 1] = e.endpoint .. ">" .. e.to end
    end
    assert.are.same({ "1>3" }, failovers)
    rl:close()
  end)

  it("cancel ends a request in any state and frees its id", function()
    local rl = relay { n = 1 }
    local a = rl:submit("m")
    poll1(rl, 0)
    local b = rl:submit("m")
    local was, r = rl:cancel(a, 0.5)
    assert.are.equal("sending", was)
    -- how it ended, for the executor to hand its waiter (as the libcurl client does)
    assert.are.equal("cancelled", r.kind)
    assert.are.equal(1, r.attempts)
    assert.is_falsy(r.ok)
    assert.are.equal(0, rl:in_flight())
    assert.is_nil(rl:result(a))
    assert.is_nil(rl:cancel(a, 0.5)) -- freed
    local was_b, rb = rl:cancel(b, 0.5, "deadline")
    assert.are.equal("ready", was_b)
    assert.are.equal("deadline", rb.kind)
    assert.are.equal(0, rl:active())
    -- a request waiting out a Retry-After
    local c = rl:submit("m")
    poll1(rl, 1)
    rl:report(c, 1, 429, nil, false, "Retry-After: 30\r\n")
    assert.are.equal(0, #poll(rl, 1))
    assert.are.equal("waiting", rl:cancel(c, 2))
    assert.are.equal(0, rl:active())
    assert.are.equal(0, #poll(rl, 40)) -- never handed out
    -- the cancelled attempt said nothing about the endpoint's health
    local st = rl:status(40)
    assert.are.equal(0, st[1].failures)
    assert.are.equal(0, st[1].in_flight)
    rl:close()
  end)

  it("records events only when asked to", function()
    local rl = relay { n = 2, breaker = { failure_threshold = 1, cooldown = 10 } }
    local id = rl:submit("m")
    poll1(rl, 0)
    rl:report(id, 0.1, 500)
    poll1(rl, 0.1)
    assert.is_nil(rl:events())
    rl:report(id, 0.2, 200, nil, true)
    poll1(rl, 0.2)
    rl:result(id)

    rl:enable_events(true)
    id = rl:submit("m")
    poll1(rl, 20) -- endpoint 1 half-open: its probe
    assert.is_true(rl:is_probe(id))
    rl:report(id, 20.1, 503)
    assert.are.equal(2, poll1(rl, 20.1).endpoint)
    local evs = events(rl)
    local f = find_event(evs, "failover")
    assert.are.same({ type = "failover", endpoint = 1, to = 2, attempt = 2, kind = "server_error", status = 503,
                      request = id }, f)
    local moves = {}
    for _, e in ipairs(evs) do
      if e.type == "breaker" then moves[#moves + 1] = e end
    end
    assert.are.same({ { type = "breaker", endpoint = 1, from = "open", state = "half_open" },
                      { type = "breaker", endpoint = 1, from = "half_open", state = "open" } }, moves)
    assert.is_nil(rl:events()) -- taken
    -- a retry on the same endpoint says how long it waits
    rl:report(id, 20.2, 200, nil, true)
    poll1(rl, 20.2)
    rl:result(id)
    rl:enable_events(false)
    id = rl:submit("m")
    assert.are.equal(2, poll1(rl, 21).endpoint)
    rl:report(id, 21, 429, nil, false, "Retry-After: 1\r\n")
    poll(rl, 21)
    assert.is_nil(rl:events()) -- off again: the throttle went unrecorded
    rl:cancel(id, 21)
    local one = relay { n = 1 }
    one:enable_events(true)
    id = one:submit("m")
    poll1(one, 0)
    one:report(id, 0, 500)
    poll(one, 0)
    local r = find_event(events(one), "retry")
    assert.are.equal("retry", r.type)
    assert.are.equal(1, r.endpoint)
    assert.are.equal(2, r.attempt)
    assert.are.equal("server_error", r.kind)
    assert.are.equal(500, r.status)
    assert.is_true(r.delay >= 0 and r.delay <= 0.5 + 1e-9)
    assert.are.equal(id, r.request)
    one:close()
    rl:close()
  end)

  it("routes by model: a model no endpoint serves ends as invalid_request", function()
    local rl = relay { n = 2, models = { { "a" }, { "b", "c" } } }
    local none = rl:submit("z", 10)
    local a = poll1(rl, 0)
    assert.are.same({ id = none, endpoint = 0, attempt = 0, timeout = 0 }, a)
    local res = rl:result(none)
    assert.is_false(res.ok)
    assert.are.equal("invalid_request", res.kind)
    assert.are.equal(0, res.attempts)
    assert.is_truthy(res.message:find("model"))
    assert.is_nil(res.endpoint)
    local c = rl:submit("c")
    assert.are.same({ id = c, endpoint = 2, attempt = 1, timeout = 600 }, poll1(rl, 0))
    -- a 404 takes the endpoint out for this request: none is left
    rl:report(c, 0.1, 404)
    poll1(rl, 0.1)
    res = rl:result(c)
    assert.are.equal("http", res.kind)
    assert.are.equal(404, res.status)
    local any = rl:submit(nil) -- no model: any endpoint
    assert.are.equal(1, poll1(rl, 0.2).endpoint)
    rl:cancel(any, 0.2)
    rl:close()
  end)

  it("import, admit and export speak for the state shared across processes", function()
    local rl = relay { n = 2, breaker = { failure_threshold = 2, cooldown = 10 } }
    -- admit(endpoint, now, probe, fails, open_until, cooldown, throttled_until, in_flight, proven)
    local ok, at = rl:admit(1, 5, false, 2, 20, 10, 0, 1, true)
    assert.is_false(ok)
    assert.are.equal(20, at)
    ok, at = rl:admit(1, 5, false, 0, 0, 0, 0, 50, true)
    assert.is_true(ok)
    assert.are.equal(5, at)
    ok, at = rl:admit(1, 5, false, 1, 0, 0, 0, 2, true) -- one failure + two in flight > 2
    assert.is_false(ok)
    assert.is_true(at > 5 and at < 6)
    ok = rl:admit(1, 5, false, 0, 0, 0, 0, 5, false) -- unproven: the warm-up
    assert.is_false(ok)
    ok = rl:admit(1, 5, true, 9, 0, 0, 0, 1) -- a probe
    assert.is_true(ok)
    -- import(endpoint, now, fails, open_until, cooldown, throttled_until, in_flight, proven)
    assert.is_true(rl:import(1, 5, 2, 20, 15, 0, 0, true))
    local st = rl:status(5)
    assert.are.equal("open", st[1].state)
    assert.is_near(15, st[1].open_for, 1e-9)
    assert.are.equal("closed", st[2].state)
    assert.is_false(rl:import(1, 5, 2, 20, 15, 0, 0, true))
    local fails, open_until, cooldown, throttled_until, state = rl:export(1, 6)
    assert.are.equal(20, open_until)
    assert.are.equal(15, cooldown)
    assert.are.equal(0, throttled_until)
    assert.are.equal("open", state)
    assert.are.equal(0, fails)
    -- a request goes to endpoint 2 meanwhile
    local id = rl:submit("m")
    assert.are.equal(2, poll1(rl, 6).endpoint)
    rl:cancel(id, 6)
    -- the cool-down over: half-open, nobody holds it open
    _, open_until, _, _, state = rl:export(1, 20)
    assert.are.equal(0, open_until)
    assert.are.equal("half_open", state)
    -- failures still running elsewhere: it stays half-open; a probe succeeded elsewhere: closed
    assert.is_false(rl:import(1, 20, 3, 0, 15, 0, 0, true))
    assert.are.equal("half_open", rl:status(20)[1].state)
    assert.is_true(rl:import(1, 20, 0, 0, 0, 0, 0, true))
    assert.are.equal("closed", rl:status(20)[1].state)
    -- the shared failures reach the threshold: open here too
    assert.is_true(rl:import(2, 21, 2, 0, 0, 0, 0, true))
    fails, open_until, _, _, state = rl:export(2, 21)
    assert.are.equal(2, fails)
    assert.are.equal(31, open_until)
    assert.are.equal("open", state)
    -- a throttle elsewhere
    rl:import(1, 21, 0, 0, 0, 30, 0, true)
    assert.is_near(9, rl:status(21)[1].throttled_for, 1e-9)
    assert.has_error(function() rl:import(3, 21) end)
    assert.has_error(function() rl:export(0, 21) end)
    rl:close()
  end)

  it("reached() lifts the warm-up cap of an endpoint not yet known to answer", function()
    local rl = relay { n = 1 }
    for _ = 1, 6 do rl:submit("m") end
    assert.are.equal(4, #poll(rl, 0)) -- LR_WARMUP_IN_FLIGHT
    assert.are.equal(0, #poll(rl, 0))
    rl:reached(1)
    assert.are.equal(2, #poll(rl, 0))
    assert.are.equal(6, rl:in_flight())
    rl:close()
  end)

  it("unsend frees a half-open probe slot", function()
    local rl = relay { n = 1, breaker = { failure_threshold = 1, cooldown = 1 } }
    rl:reached(1)
    local id = rl:submit("m")
    poll1(rl, 0)
    rl:report(id, 0, 500)
    local acts, t = poll(rl, 0) -- open for 1 s: the retry waits for it
    assert.are.equal(0, #acts)
    assert.is_true(t >= 1 and t <= 1.1 + 1e-9)
    local a = poll1(rl, t)
    assert.are.equal(2, a.attempt)
    assert.is_true(rl:is_probe(id))
    local other = rl:submit("m")
    assert.are.equal(0, #poll(rl, t)) -- one probe at a time
    rl:unsend(id, t, t) -- another process probes
    assert.is_false(rl:is_probe(id))
    acts = poll(rl, t)
    assert.are.equal(1, #acts) -- the freed slot goes to the first in line: the unsent request
    assert.are.equal(id, acts[1].id)
    assert.are.equal(2, acts[1].attempt)
    assert.is_true(rl:is_probe(id))
    rl:report(id, t + 0.1, 200, nil, true)
    assert.are.equal("closed", rl:status(t + 0.1)[1].state)
    rl:cancel(other, t + 0.1)
    rl:close()
  end)

  it("is unusable once closed", function()
    local rl = relay { n = 1 }
    rl:close()
    rl:close() -- twice is fine
    assert.has_error(function() rl:submit("m") end, "llmrelay relay is closed")
  end)
end)

describe("core.stream_decoder", function()
  local function chunk(content, finish)
    return string.format('{"choices":[{"delta":{"content":"%s"},"finish_reason":%s}]}', content,
                         finish and '"' .. finish .. '"' or "null")
  end

  local stream = ": keep-alive\n\n"
    .. "data: " .. chunk("Hel") .. "\n\n"
    .. "data: " .. chunk("lo") .. "\r\n\r\n"
    .. "data: " .. chunk("", "stop") .. "\n\n"
    .. 'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":6,"total_tokens":9}}\n\n'
    .. "data: [DONE]\n\n"

  -- Feeds s in pieces of `size` bytes; returns the events and the last fault.
  local function feed_in(d, s, size)
    local got, fault, text = {}, nil, nil
    for i = 1, #s, size do
      local evs, f, t = d:feed(s:sub(i, i + size - 1))
      for _, e in ipairs(evs) do got[#got + 1] = e end
      if f then fault, text = f, t end
    end
    return got, fault, text
  end

  it("decodes a stream fed in any pieces, and knows when it is complete", function()
    for _, size in ipairs { 1, 2, 3, 7, 16, #stream } do
      local d = core.stream_decoder(1024)
      local got, fault = feed_in(d, stream, size)
      assert.is_nil(fault)
      assert.are.same({ chunk("Hel"), chunk("lo"), chunk("", "stop"),
                        '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":6,"total_tokens":9}}' }, got)
      local saw_done, saw_finish, usage = d:state()
      assert.is_true(saw_done)
      assert.is_true(saw_finish)
      assert.are.equal(9, usage)
      assert.is_true(d:complete())
      d:close()
    end
  end)

  it("a stream cut before [DONE] and any finish_reason is not complete", function()
    local d = core.stream_decoder()
    local evs = d:feed("data: " .. chunk("a") .. "\n\ndata: " .. chunk("b"))
    assert.are.same({ chunk("a") }, evs)
    local saw_done, saw_finish, usage = d:state()
    assert.is_false(saw_done)
    assert.is_false(saw_finish)
    assert.are.equal(-1, usage)
    assert.is_false(d:complete())
    -- a finish_reason alone makes it complete, without [DONE]
    d:reset()
    d:feed("data: " .. chunk("", "length") .. "\n\n")
    saw_done, saw_finish = d:state()
    assert.is_false(saw_done)
    assert.is_true(saw_finish)
    assert.is_true(d:complete())
    -- reset forgets it; [DONE] alone is complete too, and nothing after it reaches the caller
    d:reset()
    saw_done, saw_finish, usage = d:state()
    assert.is_false(saw_done)
    assert.is_false(saw_finish)
    assert.are.equal(-1, usage)
    assert.is_false(d:complete())
    assert.are.same({}, d:feed("data: [DONE]\n\ndata: " .. chunk("late") .. "\n\n"))
    assert.is_true((d:state()))
    assert.is_true(d:complete())
  end)

  it("an error event is a fault, with its text", function()
    local d = core.stream_decoder()
    local err = '{"error":{"message":"overloaded","type":"server_error"}}'
    local evs, fault, text = d:feed("data: " .. chunk("a") .. "\n\nevent: error\ndata: " .. err .. "\n\ndata: "
                                    .. chunk("b") .. "\n\n")
    assert.are.same({ chunk("a") }, evs) -- what came before it
    assert.are.equal("error_event", fault)
    assert.are.equal(err, text)
    -- it sticks; the text is given once
    evs, fault, text = d:feed("data: " .. chunk("c") .. "\n\n")
    assert.are.same({}, evs)
    assert.are.equal("error_event", fault)
    assert.is_nil(text)
    assert.is_false(d:complete())
    -- {"error": ...} as plain data is the same
    d:reset()
    evs, fault, text = d:feed('data: {"error":{"message":"x"}}\n\n')
    assert.are.same({}, evs)
    assert.are.equal("error_event", fault)
    assert.are.equal('{"error":{"message":"x"}}', text)
    -- a fault after the finish_reason: not a whole answer after all
    d:reset()
    d:feed("data: " .. chunk("", "stop") .. "\n\n")
    assert.is_true(d:complete())
    assert.are.equal("error_event", select(2, d:feed("event: error\ndata: {}\n\n")))
    assert.is_true(select(2, d:state()))
    assert.is_false(d:complete())
  end)

  it("data that is not a JSON object is a bad_event", function()
    local d = core.stream_decoder()
    local evs, fault, text = d:feed("data: hello\n\n")
    assert.are.same({}, evs)
    assert.are.equal("bad_event", fault)
    assert.are.equal("hello", text)
  end)

  it("an event over the cap is too_big, and reset starts a new stream", function()
    local d = core.stream_decoder(128)
    local evs, fault = d:feed("data: " .. chunk("ok") .. "\n\n")
    assert.is_nil(fault)
    assert.are.equal(1, #evs)
    evs, fault = d:feed("data: " .. chunk(string.rep("x", 100)) .. "\n\n")
    assert.are.same({}, evs)
    assert.are.equal("too_big", fault)
    assert.are.equal("too_big", select(2, d:feed("data: {}\n\n"))) -- it sticks
    assert.is_false(d:complete())
    d:reset()
    local saw_done, saw_finish, usage = d:state()
    assert.is_false(saw_done)
    assert.is_false(saw_finish)
    assert.are.equal(-1, usage)
    evs, fault = d:feed('data: {"usage":{"total_tokens":4}}\n\ndata: [DONE]\n\n')
    assert.is_nil(fault)
    assert.are.same({ '{"usage":{"total_tokens":4}}' }, evs)
    saw_done, _, usage = d:state()
    assert.is_true(saw_done)
    assert.are.equal(4, usage)
    assert.is_true(d:complete())
    d:close()
    assert.has_error(function() d:feed("data: {}\n\n") end, "llmrelay stream decoder is closed")
  end)
end)
