-- `llmrelay batch --budget USD`: the job's spend may not reach past USD.
-- The spend is this run's answers' cost (resp cost, from the usage each
-- answer reported and the serving endpoint's prices) plus what earlier runs
-- recorded in the output: every priced answer's line carries its "cost"
-- (cli_jsonl.success_line), and the resume scan adds them up
-- (ledger.spent). Once the spend reaches USD no new line is taken; the
-- requests in flight finish and are written (an answer came back: it was
-- paid for, even if it went over); lines never sent are not written, so a
-- re-run with a larger --budget sends them. A result of kind "budget" (the
-- client's own `budget = {usd = N}` refused it: nothing was sent) counts as
-- never sent and stops the run the same way.
-- A model in use that an endpoint serving it has no price for cannot be
-- budgeted: the run refuses to start (exit 2) rather than count it as $0.
-- Lua 5.1 / LuaJIT / 5.4.

local plan_mod = require "llmrelay.cli_plan"
local show = require("llmrelay.cli_jsonl").show -- a name from the input, quoted, control bytes escaped
local report = require "llmrelay.cli_report"

local _M = {}

local type, tostring, tonumber, ipairs, setmetatable = type, tostring, tonumber, ipairs, setmetatable
local find, format = string.find, string.format

local MAX_BUDGET = 1e9 -- USD

-- --budget's value: a positive decimal number of USD. -> number, or nil and a message.
function _M.parse(v)
  local n = type(v) == "string" and (find(v, "^%d+%.?%d*$") or find(v, "^%.%d+$")) and tonumber(v)
  if not n or n <= 0 or n > MAX_BUDGET then
    return nil, format("batch: --budget must be a positive number of USD up to %d, like 5 or 0.25 (got '%s')",
      MAX_BUDGET, tostring(v))
  end
  return n
end

local money = report.fmt_money

---------------------------------------------------------------------------
-- The tracker

local Budget = {}
Budget.__index = Budget

-- limit: --budget's USD (nil: none given; results of kind "budget" still stop
-- the run); earlier: USD the output records as spent by earlier runs.
function _M.new(limit, earlier)
  earlier = earlier or 0
  return setmetatable({ limit = limit, earlier = earlier, spent = earlier, refused = nil, unsent = 0,
                        unpriced = 0 }, Budget)
end

-- True once no new line may be sent.
function Budget:spent_out()
  return self.refused ~= nil or (self.limit ~= nil and self.spent >= self.limit)
end

-- Takes a finished request's result (batch.run's). Returns "unsent" when the
-- client refused it for its budget (kind "budget": nothing was sent, the line
-- must not be written), else "sent", its cost added to the spend.
function Budget:result(res)
  local e = res.error
  if not res.ok and type(e) == "table" and e.kind == "budget" then
    if not self.refused then self.refused = tostring(e.message or "budget spent") end
    self.unsent = self.unsent + 1
    return "unsent"
  end
  if res.ok then
    if type(res.cost) == "number" then
      self.spent = self.spent + res.cost
    else
      self.unpriced = self.unpriced + 1
    end
  end
  return "sent"
end

-- Why the run stopped early, for stderr: left of total lines were not sent.
function Budget:message(left, total)
  if self.limit and self.spent >= self.limit then
    return format("budget of %s spent (%s); %d of %d lines left; re-run with a larger --budget to continue",
      money(self.limit), report.fmt_usd(self.spent), left, total)
  end
  return format("the client's budget refused requests (%s); %d of %d lines left, not sent; "
    .. "raise the config's budget.usd to continue", self.refused, left, total)
end

-- A warning for stderr when answers could not be counted (nil: none).
function Budget:warning()
  if not self.limit or self.unpriced == 0 then return nil end
  return format("warning: %d answers reported no usage: counted as $0 against --budget", self.unpriced)
end

---------------------------------------------------------------------------
-- The start

-- The first model in use an endpoint serving it has no price for, as a
-- message (nil: every model is priced). plan: cli_plan.scan's.
function _M.check_prices(pool, plan)
  for _, m in ipairs(plan_mod.model_names(plan)) do
    local lines = plan.models[m].lines
    local asked = m ~= "" and m or nil
    local tried = asked and plan_mod.reachable(pool, asked) or { false }
    for _, model in ipairs(tried) do
      for _, s in ipairs(plan_mod.serving(pool, model or nil)) do
        if not s.price then
          local n = format(lines == 1 and "%d line" or "%d lines", lines)
          local what = not model and format("requests naming no model (%s)", n)
            or model == asked and format("requests for model %s (%s)", show(model), n)
            or format("model %s (a fallback of %s, %s)", show(model), show(asked), n)
          return format('--budget: %s may go to endpoint %s, which has no price for %s: give '
            .. 'endpoints[%d].prices[%s] (or prices["*"]), or leave out --budget', what, show(s.name),
            model and "it" or "them", s.i, model and show(model) or '"*"')
        end
      end
    end
  end
  return nil
end

-- The run's tracker. o: the options (budget, input, shard, and norm: the
-- config as validated); ledger: the resume ledger; interrupted: as
-- cli_plan.scan's. With --budget the input is read once more up front for
-- the models in use. -> tracker, or nil and a message (a setup error).
function _M.start(o, ledger, interrupted)
  if not o.budget then return _M.new(nil, ledger.spent) end
  local pool = plan_mod.pool(o.norm)
  local plan, err = plan_mod.scan(o.input, ledger, o.shard, interrupted, o.model)
  if not plan then return nil, err end
  local perr = _M.check_prices(pool, plan)
  if perr then return nil, perr end
  return _M.new(o.budget, ledger.spent)
end

-- What the run says at its start about the budget (nil: nothing).
function Budget:start_note(ledger, output)
  if not self.limit or (self.earlier == 0 and (ledger.uncosted or 0) == 0) then return nil end
  local s = format("budget %s: %s spent by earlier runs (recorded in %s), %s left", money(self.limit),
    report.fmt_usd(self.earlier), output, report.fmt_usd(self.limit > self.earlier and self.limit - self.earlier or 0))
  if (ledger.uncosted or 0) > 0 then
    s = s .. format("; %d earlier answers record no cost (no price then): counted as $0", ledger.uncosted)
  end
  return s
end

return _M
