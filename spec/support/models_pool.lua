-- spec/support/models_pool.lua - issue 16's Done-when pool, shared by bench/models.lua (the
-- measurement, full scale) and spec/routing_done_spec.lua (the same scenario as a spec).
--
-- Three mocks serve the logical model gpt-4.1, each under its own upstream name, and each
-- refuses every other name with a 404 (--models):
--   cheap   30 req/s, burst 10, x-ratelimit-* headers      gpt-4.1 = "gpt-4.1-cheap"
--   pricey  healthy, 100 ms per answer                     gpt-4.1 = "openai/gpt-4.1",
--                                                          gpt-4.1-mini = "openai/gpt-4.1-mini"
--   broken  always 500, the only one serving `big`         big = "big-v1"
-- with prices per endpoint, strategy = "cost" and fallbacks = { big = { "gpt-4.1-mini" } }.
--
--   local pool = require "spec.support.models_pool"
--   local p = pool.start()                  -- the three mocks
--   p:config(extra)                         -- a fresh config table for llmrelay.new (extra: more fields)
--   p:new(extra) -> client, events          -- llmrelay.new(p:config(extra)); events: on_event's, in order
--   p:reset()                               -- zeroes the mocks' /stats and waits for cheap's bucket to refill
--   p:stats() -> { [name] = /stats }
--   pool.hand_cost(name, model, usage)      -- USD by hand from the prices below, or nil
--   p:low_load(n, gap) -> { endpoints = { name per answer }, errors = { err ... } }
--   p:fallback() -> resp, err, events, seconds
--   p:batch(n, c) -> figures (see run_batch below)
--   p:budget(answers, tries) -> figures (see run_budget below)
--   p:stop()
local llmrelay = require "llmrelay"
local core = require "llmrelay.core"
local mock = require "spec.support.mock"

local M = {}

M.RATE, M.BURST, M.LATENCY_MS = 30, 10, 100

-- upstream name by endpoint and logical model
M.NAMES = {
  cheap = { ["gpt-4.1"] = "gpt-4.1-cheap" },
  pricey = { ["gpt-4.1"] = "openai/gpt-4.1", ["gpt-4.1-mini"] = "openai/gpt-4.1-mini" },
  broken = { big = "big-v1" },
}

-- USD per 1M tokens (the issue's opening: GPT-4.1 output at $7.5 and $9 on two relays)
M.PRICES = {
  cheap = { ["gpt-4.1"] = { input = 1.875, output = 7.5 } },
  pricey = { ["gpt-4.1"] = { input = 2.25, output = 9, cached_input = 0.5 },
             ["gpt-4.1-mini"] = { input = 0.4, output = 1.6 } },
  broken = { big = { input = 10, output = 40 } },
}

M.ORDER = { "cheap", "pricey", "broken" }

-- The cost of an answer by hand, from the usage it carried: cached prompt tokens at
-- cached_input (default input), the rest of the prompt at input, completion tokens at output.
function M.hand_cost(name, model, usage)
  local p = M.PRICES[name] and M.PRICES[name][model]
  if not p or type(usage) ~= "table" then return nil end
  local prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
  local details = usage.prompt_tokens_details
  local cached = type(details) == "table" and details.cached_tokens or 0
  return ((prompt - cached) * p.input + cached * (p.cached_input or p.input) + completion * p.output) / 1e6
end

local Pool = {}
Pool.__index = Pool

-- upstream name at endpoint `name` for logical `model` in this pool
function Pool:upstream(name, model)
  return M.NAMES[name][model]
end

function M.start()
  local self = setmetatable({ mocks = {} }, Pool)
  local function served(name)
    local list = {}
    for logical in pairs(M.NAMES[name]) do list[#list + 1] = self:upstream(name, logical) end
    table.sort(list)
    return list
  end
  self.mocks.cheap = mock.start { name = "cheap", rps = M.RATE, burst = M.BURST, rl_headers = "full",
                                  models = served("cheap") }
  self.mocks.pricey = mock.start { name = "pricey", latency_ms = M.LATENCY_MS, models = served("pricey") }
  self.mocks.broken = mock.start { name = "broken", fail_rate = 1, fail_status = 500, models = served("broken") }
  return self
end

function Pool:config(extra)
  local eps = {}
  for i, name in ipairs(M.ORDER) do
    local models = {}
    for logical, upstream in pairs(M.NAMES[name]) do models[logical] = upstream end
    local prices = {}
    for m, p in pairs(M.PRICES[name]) do prices[m] = { input = p.input, output = p.output, cached_input = p.cached_input } end
    eps[i] = { name = name, base_url = self.mocks[name] and self.mocks[name].url or "http://127.0.0.1:9/v1",
               models = models, prices = prices }
  end
  local cfg = { endpoints = eps, strategy = "cost", fallbacks = { big = { "gpt-4.1-mini" } } }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return cfg
end

function Pool:new(extra)
  local events = {}
  local cfg = self:config(extra)
  cfg.on_event = function(ev) events[#events + 1] = ev end
  return llmrelay.new(cfg), events
end

function Pool:stats()
  local out = {}
  for name, m in pairs(self.mocks) do out[name] = m:stats() end
  return out
end

function Pool:reset()
  for _, m in pairs(self.mocks) do m:stats(true) end
  core.sleep(2 * M.BURST / M.RATE) -- cheap's bucket full again
end

local function req(text, model)
  return { model = model or "gpt-4.1", messages = { { role = "user", content = text } } }
end

-- n sequential requests for gpt-4.1, gap seconds apart (low load)
function Pool:low_load(n, gap)
  local client = self:new()
  local out = { endpoints = {}, errors = {} }
  for i = 1, n do
    local resp, err = client:chat_completion(req("low load " .. i))
    if resp then out.endpoints[#out.endpoints + 1] = resp._llmrelay.endpoint
    else out.errors[#out.errors + 1] = err end
    core.sleep(gap)
  end
  client:close()
  return out
end

-- one request for `big`, which only broken serves -> resp, err, events, seconds
function Pool:fallback()
  local client, events = self:new()
  local t0 = core.now()
  local resp, err = client:chat_completion(req("a big question", "big"))
  local seconds = core.now() - t0
  client:close()
  return resp, err, events, seconds
end

local function sum_metric(text, family, endpoint)
  local total, seen = 0, false
  for ep, v in text:gmatch(family .. '{endpoint="([^"]*)",model="[^"]*"} (%S+)') do
    if ep == endpoint then total, seen = total + tonumber(v), true end
  end
  return seen and total or nil
end

-- n requests for gpt-4.1 (distinct contents) through client:batch at concurrency c.
-- -> { n, ok, failed = { [kind] = count }, elapsed,
--      answers = { [name] = count }, served = { [name] = 200s in its /stats }, r429, r404 (all mocks),
--      wrong_upstream (answers whose echoed model is not their endpoint's name for gpt-4.1),
--      wrong_logical (answers whose _llmrelay.model is not gpt-4.1), uncosted,
--      cost_err (largest |_llmrelay.cost - hand|), hand = { [name] = USD }, hand_total,
--      status = { [name] = status()[i].cost }, metrics = { [name] = llmrelay_cost_usd_total summed },
--      summary_cost, summary_ep = { [name] = summary.endpoints[name].cost },
--      capacity (burst + rate x elapsed), ratio (served.cheap / capacity) }
function Pool:batch(n, c)
  self:reset()
  local client = self:new()
  local reqs = {}
  for i = 1, n do reqs[i] = req("question " .. i .. string.rep(" x", i % 7)) end
  local results, summary = client:batch(reqs, { concurrency = c })
  local f = { n = n, ok = summary.ok, failed = {}, elapsed = summary.elapsed, answers = {}, served = {},
              r429 = 0, r404 = 0, wrong_upstream = 0, wrong_logical = 0, uncosted = 0, cost_err = 0,
              hand = {}, hand_total = 0, status = {}, metrics = {}, summary_cost = summary.cost, summary_ep = {} }
  for _, r in ipairs(results) do
    if r.ok then
      local resp, info = r.response, r.response._llmrelay
      local name = info.endpoint
      f.answers[name] = (f.answers[name] or 0) + 1
      if resp.model ~= self:upstream(name, "gpt-4.1") then f.wrong_upstream = f.wrong_upstream + 1 end
      if info.model ~= "gpt-4.1" then f.wrong_logical = f.wrong_logical + 1 end
      local hand = M.hand_cost(name, "gpt-4.1", resp.usage)
      if not hand or not info.cost then
        f.uncosted = f.uncosted + 1
      else
        f.cost_err = math.max(f.cost_err, math.abs(info.cost - hand))
        f.hand[name] = (f.hand[name] or 0) + hand
        f.hand_total = f.hand_total + hand
      end
    else
      local k = r.error.kind
      f.failed[k] = (f.failed[k] or 0) + 1
    end
  end
  local metrics = client:metrics()
  for i, s in ipairs(client:status()) do
    f.status[s.name] = s.cost
    f.metrics[s.name] = sum_metric(metrics, "llmrelay_cost_usd_total", M.ORDER[i])
    f.summary_ep[s.name] = summary.endpoints and summary.endpoints[s.name] and summary.endpoints[s.name].cost
  end
  client:close()
  for name, st in pairs(self:stats()) do
    f.served[name] = st.status["200"] or 0
    f.r429 = f.r429 + (st.status["429"] or 0)
    f.r404 = f.r404 + (st.status["404"] or 0)
  end
  f.capacity = M.BURST + M.RATE * f.elapsed
  f.ratio = f.served.cheap / f.capacity
  return f
end

-- The figures' costs agree with the hand computation to 1e-9 USD (nil) or what does not.
function M.cost_mismatch(f)
  if f.uncosted > 0 then return f.uncosted .. " answers without a cost or a price" end
  if f.cost_err > 1e-9 then return ("an answer's cost is off by %.3g USD"):format(f.cost_err) end
  if not f.summary_cost or math.abs(f.summary_cost - f.hand_total) > 1e-9 then
    return ("summary.cost %s, by hand %.12f"):format(tostring(f.summary_cost), f.hand_total)
  end
  for _, name in ipairs(M.ORDER) do
    local hand = f.hand[name] or 0
    for _, src in ipairs { "status", "metrics", "summary_ep" } do
      local v = f[src][name]
      if v == nil and hand == 0 and src ~= "status" then v = 0 end -- nothing priced there: no line, no entry
      if not v or math.abs(v - hand) > 1e-9 then
        return ("%s of %s: %s, by hand %.12f"):format(src, name, tostring(v), hand)
      end
    end
  end
  return nil
end

-- A client with budget = { usd = answers x one answer's cost (measured on an answer to the
-- same request, at cheap's price) } sends `tries` identical requests one after another.
-- -> { unit (USD of one answer), budget, ok, refused (kind budget), other = { kind ... },
--      refused_sent (requests the mocks saw beyond the answers), late_ok (answers after a refusal),
--      bad_refusal (a refusal with attempts ~= 0), message (the first refusal's) }
function Pool:budget(answers, tries)
  self:reset()
  local probe = self:new()
  local resp, err = probe:chat_completion(req("within budget"))
  probe:close()
  assert(resp, err and tostring(err))
  local unit = M.hand_cost(resp._llmrelay.endpoint, "gpt-4.1", resp.usage)
  local f = { unit = unit, budget = answers * unit, ok = 0, refused = 0, other = {}, late_ok = 0, bad_refusal = 0 }
  self:reset()
  local client = self:new { budget = { usd = f.budget } }
  for _ = 1, tries do
    local r, e = client:chat_completion(req("within budget"))
    if r then
      f.ok = f.ok + 1
      if f.refused > 0 then f.late_ok = f.late_ok + 1 end
    elseif e.kind == "budget" then
      f.refused = f.refused + 1
      f.message = f.message or e.message
      if e.attempts ~= 0 then f.bad_refusal = f.bad_refusal + 1 end
    else
      f.other[#f.other + 1] = e.kind
    end
    core.sleep(0.05)
  end
  client:close()
  local seen = 0
  for _, st in pairs(self:stats()) do seen = seen + st.requests end
  f.refused_sent = seen - f.ok
  return f
end

function Pool:stop()
  for _, m in pairs(self.mocks) do m:stop() end
end

return M
