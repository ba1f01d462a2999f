-- llmrelay.budget: config `budget = { usd = N }`. Once the client has spent N
-- (the sum of what its answers cost, as llmrelay.cost's ledger charges them), every
-- new request is refused before anything is sent, with kind "budget"; requests
-- already in flight finish and are charged (so the spend may end a little over N).
--
-- What counts as spent is the largest of three totals:
--   own     this client's charges (this process, this nginx worker);
--   host    with shared_dict (OpenResty), every worker's charges: each charge is
--           added to one key of the dict (incr takes a float), which every worker reads;
--   fleet   with redis, every member's charges: llmrelay.fleet's exchange (every
--           80 ms while busy, no extra round trip) carries this member's spend since
--           its last exchange and brings back the fleet's total, to which the spend
--           not told yet is added. Before its first exchange a member reads the
--           total once (one GET); spend that takes it past the budget forces an
--           exchange, and close() tells what is left.
-- The dict's key (llmrelay:<name>:spent) and Redis's (<prefix>:<name>:spent) have no
-- expiry: a pool's spend outlives its clients (an nginx reload, a restarted host);
-- delete the key, or raise the budget, to spend again.

local errors = require "llmrelay.errors"

local format, gsub, max = string.format, string.gsub, math.max
local setmetatable = setmetatable

local _M = {}
local Budget = {}
Budget.__index = Budget

-- USD as people write it: at most 6 decimals, no trailing zeros.
local function usd_text(x)
  local s = gsub(gsub(format("%.6f", x), "0+$", ""), "%.$", "")
  return s
end
_M.usd_text = usd_text

-- The budget of a normalized config, or nil when it sets none.
function _M.new(cfg)
  local usd = cfg.budget and cfg.budget.usd
  if not usd then return nil end
  local dict = cfg.shared_dict and ngx and ngx.shared and ngx.shared[cfg.shared_dict] or nil
  return setmetatable({
    usd = usd,
    own = 0,         -- USD this client was charged
    told = 0,        -- of which the fleet was told
    fleet = 0,       -- the fleet's total at the last exchange
    dict = dict, key = "llmrelay:" .. cfg.name .. ":spent",
  }, Budget)
end

-- The ledger charged an answer usd (> 0).
function Budget:add(usd)
  self.own = self.own + usd
  local d = self.dict
  -- nil when the dict is full: the worker's own total still holds
  if d then d:incr(self.key, usd, 0) end
end

-- USD spent so far: the largest total this client knows.
function Budget:spent()
  local s = max(self.own, self.fleet + (self.own - self.told))
  local d = self.dict
  if d then
    local host = d:get(self.key)
    if host and host > s then s = host end
  end
  return s
end

-- nil while the budget holds, else the error refusing a new request.
function Budget:refusal()
  local fleet = self.exchanger -- the llmrelay.fleet (config redis) sets itself here
  if fleet and not self.seen then
    self.seen = true
    fleet:first_spend()
  end
  local spent = self:spent()
  if spent < self.usd then return nil end
  return errors.new { kind = "budget", attempts = 0,
                      message = format("budget of $%s spent ($%s so far)", usd_text(self.usd), usd_text(spent)) }
end

-- For the fleet's exchange: what the fleet was not told yet (USD).
function Budget:unsent()
  return self.own - self.told
end

-- Spend the fleet was not told took this client past the budget: worth an exchange now.
function Budget:urgent()
  return self.own > self.told and self:spent() >= self.usd
end

-- The exchange told the fleet `sent` (what unsent() said) and the fleet's total is now `total`.
function Budget:exchanged(sent, total)
  self.seen = true
  self.told = self.told + sent
  if total and total >= 0 then self.fleet = total end
end

-- status().budget
function Budget:status()
  return { usd = self.usd, spent = self:spent() }
end

-- Appends the budget's two families (Prometheus text) to out; b: status().budget.
function Budget:metrics(out, b)
  out[#out + 1] = format("# HELP llmrelay_budget_usd The configured budget (budget.usd), USD.\n"
    .. "# TYPE llmrelay_budget_usd gauge\nllmrelay_budget_usd %.17g\n", b.usd)
  out[#out + 1] = format("# HELP llmrelay_spent_usd_total USD spent against the budget: the largest of this "
    .. "client's, its nginx workers' (shared_dict) and its fleet's (redis) totals.\n"
    .. "# TYPE llmrelay_spent_usd_total counter\nllmrelay_spent_usd_total %.17g\n", b.spent)
end

return _M
