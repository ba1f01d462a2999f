-- strategy = "cost" (the cheapest usable endpoint first, spilling over to the next before
-- the cheap one answers 429s), fallbacks and context_window_fallbacks between logical
-- models in the relay, and their on_event events.
local llmrelay = require "llmrelay"
local mock = require "spec.support.mock"
local nginx = require "spec.support.nginx"
local cjson = require "cjson"

local function req(model, content)
  return { model = model, messages = { { role = "user", content = content or "hi" } } }
end

local CHEAP = { ["gpt-4.1"] = { input = 2, output = 8 } }
local PRICEY = { ["*"] = { input = 3, output = 12 } }

describe("strategy = \"cost\"", function()
  local cheap, pricey

  after_each(function()
    if cheap then cheap:stop() end
    if pricey then pricey:stop() end
    cheap, pricey = nil, nil
  end)

  it("sends every request to the cheapest endpoint at low load", function()
    cheap = mock.start { name = "cheap", models = { "cheap-4.1" } }
    pricey = mock.start { name = "pricey" }
    local c = llmrelay.new {
      endpoints = { { name = "pricey", base_url = pricey.url, prices = PRICEY, weight = 100 },
                    { name = "cheap", base_url = cheap.url, models = { ["gpt-4.1"] = "cheap-4.1" }, prices = CHEAP } },
      strategy = "cost",
    }
    for _ = 1, 10 do
      local resp = assert(c:chat_completion(req("gpt-4.1")))
      assert.equal("cheap", resp._llmrelay.endpoint)
      assert.equal("cheap-4.1", resp.model)
    end
    assert.equal(10, cheap:stats().requests)
    assert.equal(0, pricey:stats().requests)
  end)

  it("spills over to the next cheapest while the cheapest is paced, before it answers 429s", function()
    cheap = mock.start { name = "cheap", rps = 30, burst = 10, rl_headers = "full" }
    pricey = mock.start { name = "pricey", latency_ms = 100 }
    local c = llmrelay.new {
      endpoints = { { name = "cheap", base_url = cheap.url, prices = CHEAP },
                    { name = "pricey", base_url = pricey.url, prices = PRICEY } },
      strategy = "cost",
    }
    local reqs = {}
    for i = 1, 120 do reqs[i] = req("gpt-4.1") end
    local results, summary = c:batch(reqs, { concurrency = 20 })
    assert.equal(120, summary.ok)
    local by = {}
    for _, r in ipairs(results) do
      local ep = r.response._llmrelay.endpoint
      by[ep] = (by[ep] or 0) + 1
    end
    local cs = cheap:stats()
    assert.truthy(by.cheap >= 20, cjson.encode(by))
    assert.truthy(by.pricey >= 10, cjson.encode(by))
    -- the cheap one's published limits steer the spill: few of its answers are 429s
    assert.truthy((cs.status["429"] or 0) <= 8, cjson.encode(cs))
  end)
end)

describe("fallbacks between models", function()
  local broken, pricey, small, large

  setup(function()
    broken = mock.start { name = "broken", fail_rate = 1, fail_status = 500 }
    pricey = mock.start { name = "pricey", models = { "mini-up" } }
    small = mock.start { name = "small", bad_marker = "TOOLONG", bad_status = 400,
                         bad_code = "context_length_exceeded" }
    large = mock.start { name = "large" }
  end)
  teardown(function()
    broken:stop()
    pricey:stop()
    small:stop()
    large:stop()
  end)

  local function client(events, drop)
    local cfg = {
      endpoints = { { name = "broken", base_url = broken.url, models = { "big" } },
                    { name = "pricey", base_url = pricey.url, models = { ["gpt-4.1-mini"] = "mini-up" } },
                    { name = "small", base_url = small.url, models = { "small" } },
                    { name = "large", base_url = large.url, models = { "large" } } },
      retry = { max_attempts = 2, base_delay = 0.01, max_delay = 0.02 },
      fallbacks = { big = { "gpt-4.1-mini" } },
      context_window_fallbacks = { small = { "large" } },
      on_event = function(e) events[#events + 1] = e end,
    }
    if drop then cfg[drop] = nil end
    return llmrelay.new(cfg)
  end

  local function fallback_events(events)
    local out = {}
    for _, e in ipairs(events) do
      if e.type == "fallback" then out[#out + 1] = e end
    end
    return out
  end

  it("answers a model that fails everywhere with its fallback, and says so", function()
    local events = {}
    local c = client(events)
    local resp, err = c:chat_completion(req("big"))
    assert.is_nil(err)
    assert.equal("mini-up", resp.model)
    assert.equal("gpt-4.1-mini", resp._llmrelay.model)
    assert.equal("pricey", resp._llmrelay.endpoint)
    assert.equal(3, resp._llmrelay.attempts) -- big's 2, then the fallback's first
    local fb = fallback_events(events)
    assert.equal(1, #fb)
    assert.equal("big", fb[1].from)
    assert.equal("gpt-4.1-mini", fb[1].to)
    assert.equal("server_error", fb[1].kind)
    assert.equal(500, fb[1].status)
    assert.equal("broken", fb[1].endpoint)
  end)

  it("falls back in a batch and a stream (before the first event) too", function()
    local events = {}
    local c = client(events)
    local results, summary = c:batch({ req("big"), req("big"), req("gpt-4.1-mini") }, { concurrency = 3 })
    assert.equal(3, summary.ok)
    for _, r in ipairs(results) do assert.equal("gpt-4.1-mini", r.response._llmrelay.model) end
    assert.equal(2, #fallback_events(events))
    local st = c:stream(req("big"))
    local model
    for chunk, e in st do
      assert.is_nil(e)
      model = model or chunk.model
    end
    assert.equal("mini-up", model)
    assert.equal("gpt-4.1-mini", st._llmrelay.model)
  end)

  it("ends with the model's own failure when no fallback is left, or none is configured", function()
    local c = client({}, "fallbacks")
    local resp, err = c:chat_completion(req("big"))
    assert.is_nil(resp)
    assert.equal("server_error", err.kind)
    assert.equal(2, err.attempts)
  end)

  it("moves a request too long for its model to the context window fallback", function()
    local events = {}
    local c = client(events)
    local resp, err = c:chat_completion(req("small", "TOOLONG"))
    assert.is_nil(err)
    assert.equal("large", resp._llmrelay.model)
    assert.equal("large", resp._llmrelay.endpoint)
    local fb = fallback_events(events)
    assert.equal(1, #fb)
    assert.same({ "small", "large", "invalid_request", 400 }, { fb[1].from, fb[1].to, fb[1].kind, fb[1].status })
    -- a request that is simply wrong is not moved
    local small_only = client({}, "context_window_fallbacks")
    resp, err = small_only:chat_completion(req("small", "TOOLONG"))
    assert.is_nil(resp)
    assert.equal("invalid_request", err.kind)
    assert.equal("context_length_exceeded", err.code)
  end)
end)

describe("fallbacks with the OpenResty executor", function()
  if not nginx.required(it, "routing spec (OpenResty)") then return end
  local broken, pricey, small, large, n

  setup(function()
    assert(mock.run("make -s LUA=luajit >/dev/null"), "make LUA=luajit failed")
    broken = mock.start { name = "broken", fail_rate = 1, fail_status = 500 }
    pricey = mock.start { name = "pricey", models = { "mini-up" } }
    small = mock.start { name = "small", bad_marker = "TOOLONG", bad_status = 400,
                         bad_code = "context_length_exceeded" }
    large = mock.start { name = "large" }
    n = nginx.start {
      init = ([[
        local llmrelay = require "llmrelay"
        events = {}
        client = llmrelay.new {
          endpoints = { { name = "broken", base_url = %q, models = { "big" } },
                        { name = "pricey", base_url = %q, models = { ["gpt-4.1-mini"] = "mini-up" } },
                        { name = "small", base_url = %q, models = { "small" } },
                        { name = "large", base_url = %q, models = { "large" } } },
          retry = { max_attempts = 2, base_delay = 0.01, max_delay = 0.02 },
          fallbacks = { big = { "gpt-4.1-mini" } },
          context_window_fallbacks = { small = { "large" } },
          on_event = function(e) if e.type == "fallback" then events[#events + 1] = e end end,
        }
      ]]):format(broken.url, pricey.url, small.url, large.url),
      http = [[
        server {
          listen 127.0.0.1:$PORT;
          location = /chat { content_by_lua_block {
            for k in pairs(events) do events[k] = nil end
            local resp, err = client:chat_completion { model = ngx.var.arg_model,
              messages = { { role = "user", content = ngx.var.arg_text or "hi" } } }
            ngx.say(require("cjson").encode { model = resp and resp.model, logical = resp and resp._llmrelay.model,
              err = err and tostring(err), events = events })
          } }
        }
      ]],
    }
  end)
  teardown(function()
    if n then n:stop() end
    broken:stop()
    pricey:stop()
    small:stop()
    large:stop()
  end)

  local function chat(q)
    local code, body = nginx.curl(n.base .. "/chat?" .. q, { timeout = 10 })
    assert.equal(200, code, body)
    return cjson.decode(body), body
  end

  it("falls back on failures and on context_length_exceeded as the libcurl executor does", function()
    local r, body = chat("model=big")
    assert.equal("mini-up", r.model, body)
    assert.equal("gpt-4.1-mini", r.logical)
    assert.equal(1, #r.events)
    assert.same({ "big", "gpt-4.1-mini", "server_error", 500 }, { r.events[1].from, r.events[1].to, r.events[1].kind,
                r.events[1].status })
    r, body = chat("model=small&text=TOOLONG")
    assert.equal("large", r.logical, body)
    assert.equal("invalid_request", r.events[1].kind)
  end)
end)
