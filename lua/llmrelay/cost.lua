-- What answers cost: the usage a server reported, priced at the serving endpoint's
-- `prices` for the request's model (its own entry, else "*"), and the client's running
-- totals per endpoint and model behind status()[i].cost, metrics() and batch summaries.
-- Prices are USD per 1M tokens; prompt tokens the server says were cached
-- (usage.prompt_tokens_details.cached_tokens) are charged at cached_input, the rest of the
-- prompt at input, completion tokens at output. No usage or no price: no cost. Every api
-- is priced alike: Responses' input_tokens/output_tokens (input_tokens_details.cached_tokens)
-- count as prompt/completion tokens; embeddings have prompt tokens only.

local core = require "llmrelay.core"

local type, ipairs, pairs, tonumber, select, setmetatable = type, ipairs, pairs, tonumber, select, setmetatable
local find, format, sort, floor = string.find, string.format, table.sort, math.floor
local json_member, usage = core.json_member, core.usage

local _M = {}

-- Distinct models kept per endpoint; answers for more are counted under OTHER, so
-- callers naming models at will (a gateway's) cannot grow the totals without bound.
local MAX_MODELS_KEPT = 256
local OTHER = "~other"
_M.MAX_MODELS_KEPT, _M.OTHER = MAX_MODELS_KEPT, OTHER

-- The token kinds, each charged at the price of the same name.
local KINDS = { "input", "output", "cached_input" }
_M.KINDS = KINDS

-- The price table endpoint prices hold for model (nil: none known).
function _M.price(prices, model)
  if not prices then return nil end
  return (model and prices[model]) or prices["*"]
end

local function counted(...)
  return select("#", ...), ...
end

-- The tokens of a JSON answer or chunk with a top-level usage object, by kind
-- (input = prompt tokens not served from cache), or nil without one. Missing counts are 0.
function _M.tokens(text)
  if not text or not find(text, '"usage"', 1, true) then return nil end
  local n, prompt, completion = counted(usage(text))
  if n == 0 then return nil end
  prompt, completion = prompt or 0, completion or 0
  local cached = 0
  local u = json_member(text, "usage")
  local details = json_member(u, "prompt_tokens_details") or json_member(u, "input_tokens_details") -- Responses
  local c = details and find(details, "^{") and tonumber(json_member(details, "cached_tokens") or "")
  if c and c > 0 and c == floor(c) then cached = c < prompt and c or prompt end
  return { input = prompt - cached, output = completion, cached_input = cached }
end

-- USD of tokens (by kind) at price p (USD per 1M tokens by kind).
function _M.usd(p, t)
  return (t.input * p.input + t.output * p.output + t.cached_input * p.cached_input) / 1e6
end

-- The last of a stream's events (JSON strings) reporting usage, else prev: a
-- chunk's top-level usage, or a Responses event's response.usage (then the
-- "response" object is what is returned, its usage at the top).
function _M.usage_event(events, prev)
  if not events then return prev end
  for i = 1, #events do
    local ev = events[i]
    if find(ev, '"usage"', 1, true) then
      if select("#", usage(ev)) > 0 then
        prev = ev
      else
        local r = json_member(ev, "response")
        if r and find(r, "^{") and select("#", usage(r)) > 0 then prev = r end
      end
    end
  end
  return prev
end

---------------------------------------------------------------------------
-- The ledger: one per client

local Ledger = {}
Ledger.__index = Ledger

-- endpoints: the normalized config's endpoints (their prices); budget: the
-- client's llmrelay.budget (each charge is added to it), or nil.
function _M.ledger(endpoints, budget)
  local prices, spent, rows = {}, {}, {}
  for i, ep in ipairs(endpoints) do
    prices[i], spent[i], rows[i] = ep.prices, 0, { n = 0, by = {} }
  end
  return setmetatable({ prices = prices, spent = spent, rows = rows, model_of = {}, budget = budget }, Ledger)
end

-- The model request id asked for, kept until its result is charged or it is cancelled.
function Ledger:remember(id, model)
  if model ~= nil then self.model_of[id] = model end
end

function Ledger:forget(id)
  self.model_of[id] = nil
end

local function row(self, i, model)
  local r = self.rows[i]
  local label = model or ""
  local t = r.by[label]
  if t then return t end
  if r.n >= MAX_MODELS_KEPT then
    label = OTHER
    t = r.by[label]
    if t then return t end
  end
  t = { input = 0, output = 0, cached_input = 0 }
  r.by[label], r.n = t, r.n + 1
  return t
end

-- Charges core result r (r.endpoint still the endpoint's index) for the usage in
-- text, once: sets r.model (the request's model) and, when a price is known, r.cost
-- (USD). -> r.cost
function Ledger:charge(r, text)
  if r.charged then return r.cost end
  r.charged = true
  local id = r.id
  local model = r.model or (id and self.model_of[id]) -- the core's: the logical model that answered
  if id then self.model_of[id] = nil end
  r.model = model
  local i = r.endpoint
  if type(i) ~= "number" or not self.rows[i] then return nil end
  local t = _M.tokens(text)
  if not t then return nil end
  local acc = row(self, i, model)
  for _, k in ipairs(KINDS) do acc[k] = acc[k] + t[k] end
  local p = _M.price(self.prices[i], model)
  if not p then return nil end
  local usd = _M.usd(p, t)
  acc.cost = (acc.cost or 0) + usd
  self.spent[i] = self.spent[i] + usd
  if self.budget and usd > 0 then self.budget:add(usd) end
  r.cost = usd
  return usd
end

-- status()[i].cost: USD spent on endpoint i so far.
function Ledger:fill_status(st)
  for i, s in ipairs(st) do s.cost = self.spent[i] or 0 end
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  sort(keys)
  return keys
end

-- Appends the cost and token families (Prometheus text) to out; names[i] is endpoint
-- i's name, label(s) escapes a label value.
function Ledger:metrics(out, names, label)
  local cost_lines, token_lines = {}, {}
  for i, r in ipairs(self.rows) do
    local ep = label(names[i])
    for _, m in ipairs(sorted_keys(r.by)) do
      local t, lm = r.by[m], label(m)
      if t.cost then
        cost_lines[#cost_lines + 1] = format('llmrelay_cost_usd_total{endpoint="%s",model="%s"} %.17g\n', ep, lm,
                                             t.cost)
      end
      for _, k in ipairs(KINDS) do
        token_lines[#token_lines + 1] = format('llmrelay_tokens_total{endpoint="%s",model="%s",kind="%s"} %.17g\n',
                                               ep, lm, k, t[k])
      end
    end
  end
  out[#out + 1] = "# HELP llmrelay_cost_usd_total USD spent on the endpoint for the model, from the usage answers reported and the endpoint's prices.\n# TYPE llmrelay_cost_usd_total counter\n"
  for _, l in ipairs(cost_lines) do out[#out + 1] = l end
  out[#out + 1] = "# HELP llmrelay_tokens_total Tokens answers reported, by kind: input (prompt tokens not cached), output, cached_input.\n# TYPE llmrelay_tokens_total counter\n"
  for _, l in ipairs(token_lines) do out[#out + 1] = l end
end

return _M
