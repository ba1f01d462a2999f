-- What `llmrelay batch` would send, read from the input without sending it:
-- the lines per model with their estimated tokens, the prices of the
-- endpoints serving each model, and the `--dry-run` report built from them.
-- `--budget` uses the same scan to check that every model in use is priced.
-- Lua 5.1 / LuaJIT / 5.4.

local core = require "llmrelay.core"
local jsonl = require "llmrelay.cli_jsonl"
local cost = require "llmrelay.cost"
local report = require "llmrelay.cli_report"

local _M = {}

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, sub, gsub = string.format, string.sub, string.gsub
local floor, max = math.floor, math.max
local concat, sort = table.concat, table.sort

-- Output tokens assumed for a line that gives neither max_completion_tokens nor max_tokens.
local DEFAULT_OUTPUT_TOKENS = 256
_M.DEFAULT_OUTPUT_TOKENS = DEFAULT_OUTPUT_TOKENS

local SCAN_CHECK_EVERY = 8192 -- lines between two looks at interrupted()

---------------------------------------------------------------------------
-- The pool as pricing sees it

-- norm: config.validate's result (each endpoint's logical model names, its
-- prices, the fallbacks). -> { endpoints = {{ name, serves (a set of logical
-- names, nil for every model), prices }, ...}, strategy, fallbacks = { [model] = {...} } }
function _M.pool(norm)
  local eps = {}
  for i, ep in ipairs(norm.endpoints) do
    local serves
    if ep.models and #ep.models > 0 then
      serves = {}
      for _, m in ipairs(ep.models) do serves[m] = true end
    end
    eps[i] = { name = ep.name, serves = serves, prices = ep.prices }
  end
  local fallbacks = {}
  for _, field in ipairs { "fallbacks", "context_window_fallbacks" } do
    for m, list in pairs(norm[field] or {}) do
      local all = fallbacks[m] or {}
      fallbacks[m] = all
      for _, other in ipairs(list) do all[#all + 1] = other end
    end
  end
  return { endpoints = eps, strategy = norm.strategy, fallbacks = fallbacks }
end

-- The endpoints serving model (nil: a request naming none, which every endpoint serves):
-- a list of { i, name, price (nil: none) }.
function _M.serving(pool, model)
  local list = {}
  for i, ep in ipairs(pool.endpoints) do
    if model == nil or not ep.serves or ep.serves[model] then
      list[#list + 1] = { i = i, name = ep.name, price = cost.price(ep.prices, model) }
    end
  end
  return list
end

-- The models a request for model may end up answered by: itself, then its
-- fallbacks (and theirs), each once.
function _M.reachable(pool, model)
  local out, seen, k = { model }, { [model] = true }, 1
  while out[k] ~= nil do
    for _, other in ipairs(pool.fallbacks[out[k]] or {}) do
      if not seen[other] then
        seen[other] = true
        out[#out + 1] = other
      end
    end
    k = k + 1
  end
  return out
end

---------------------------------------------------------------------------
-- The scan

-- Whether the ledger (cli_jsonl.scan_output, before or after check_input)
-- already answers input line r (lineno).
local function answered(ledger, r, lineno)
  if not ledger then return false end
  if r.problem then
    local e = ledger.lines[lineno]
    return e == true or (type(e) == "table" and e[jsonl.bad_line_hash(r)] ~= nil)
  end
  return ledger.ids:get(r.custom_id) ~= nil
end

-- Reads the input as a run does (cli_jsonl.classifier: the same validation)
-- and tallies what this run would send: one line at a time, nothing kept but
-- the counts (and the classifier's set of custom_ids). ledger: what -o already
-- answers (nil: nothing); shard: cli_fleet's or nil; interrupted(): asked now
-- and then, true cuts the scan short (plan.complete = false). Returns plan =
--   { models = { [model or ""] = { lines, input, output, defaulted } },
--     lines (this shard's non-blank lines), others (other shards'), answered,
--     bad (bad lines to answer), send (requests to send), complete }
-- or nil and a message. input tokens: a quarter of the body's bytes (the
-- core's rule); output: max_completion_tokens, else max_tokens, else
-- DEFAULT_OUTPUT_TOKENS (counted in defaulted).
function _M.scan(path, ledger, shard, interrupted, model)
  local f, err = io.open(path, "rb")
  if not f then return nil, "cannot open input: " .. tostring(err) end
  local plan = { models = {}, lines = 0, others = 0, answered = 0, bad = 0, send = 0, complete = true }
  local models = plan.models
  local classify, seen = jsonl.classifier(model)
  local k = 0
  for line in f:lines() do
    k = k + 1
    local r, lineno = classify(line)
    if r then
      if shard and not shard:owns(r.custom_id, lineno) then
        plan.others = plan.others + 1
      else
        plan.lines = plan.lines + 1
        if answered(ledger, r, lineno) then
          plan.answered = plan.answered + 1
        elseif r.problem then
          plan.bad = plan.bad + 1
        else
          plan.send = plan.send + 1
          local key = r.model or ""
          local t = models[key]
          if not t then
            t = { lines = 0, input = 0, output = 0, defaulted = 0 }
            models[key] = t
          end
          local body = r.body
          local input = floor(#body / 4)
          local output = core.estimate_tokens(body) - input
          if output <= 0 then
            output = DEFAULT_OUTPUT_TOKENS
            t.defaulted = t.defaulted + 1
          end
          t.lines, t.input, t.output = t.lines + 1, t.input + input, t.output + output
        end
      end
    end
    if interrupted and k % SCAN_CHECK_EVERY == 0 and interrupted() then
      plan.complete = false
      break
    end
  end
  f:close()
  seen:free()
  return plan
end

-- The scan's models in name order ("" for requests naming none sorts first).
function _M.model_names(plan)
  local names = {}
  for m in pairs(plan.models) do names[#names + 1] = m end
  sort(names)
  return names
end

---------------------------------------------------------------------------
-- Estimates and the --dry-run report

-- USD of tally t at price p (cached input is not foreseeable: all input at `input`).
local function usd(p, t)
  return (t.input * p.input + t.output * p.output) / 1e6
end

-- The estimate of tally t for model: lo, hi (USD over the priced endpoints
-- serving it; nil when none is), the names of serving endpoints without a
-- price, and how many endpoints serve it.
function _M.estimate(pool, model, t)
  local lo, hi, unpriced = nil, nil, {}
  local serving = _M.serving(pool, model)
  for _, s in ipairs(serving) do
    if s.price then
      local x = usd(s.price, t)
      lo = (lo == nil or x < lo) and x or lo
      hi = (hi == nil or x > hi) and x or hi
    else
      unpriced[#unpriced + 1] = s.name
    end
  end
  return lo, hi, unpriced, #serving
end

local function range(lo, hi)
  if lo == hi then return report.fmt_usd(lo) end
  return report.fmt_usd(lo) .. ".." .. report.fmt_usd(hi)
end

local function plural(n, one, many)
  return format("%d %s", n, n == 1 and one or (many or one .. "s"))
end

-- The --dry-run report (a string for stdout). o: the options (input, output,
-- shard, budget); earlier: USD the output records as spent (nil: no budget).
function _M.report(o, pool, plan, earlier)
  local out = {}
  out[#out + 1] = format("llmrelay batch --dry-run: nothing sent; %s would be sent from %s",
    plural(plan.send, "request"), o.input)
  if o.shard then
    out[#out + 1] = format("  shard %s: %d of the input's %d lines (the others are left to the other shards)",
      o.shard.label, plan.lines, plan.lines + plan.others)
  end
  if o.output then
    out[#out + 1] = plan.answered > 0 and format("  resuming %s: %s already answered there, not counted",
      o.output, plural(plan.answered, "line")) or format("  %s answers no line yet", o.output)
  end
  if plan.bad > 0 then
    out[#out + 1] = format("  %s would be answered with invalid_request errors, not sent",
      plural(plan.bad, "bad input line"))
  end
  if not plan.complete then out[#out + 1] = "  interrupted: the figures below cover only the lines read" end
  local rows = { { "model", "lines", "input tokens", "output tokens", "estimated cost (USD)" } }
  local tot = { lines = 0, input = 0, output = 0, defaulted = 0 }
  local lo_sum, hi_sum, unpriced_lines = 0, 0, 0
  for _, m in ipairs(_M.model_names(plan)) do
    local t = plan.models[m]
    local lo, hi, unpriced, nserving = _M.estimate(pool, m ~= "" and m or nil, t)
    local txt
    if nserving == 0 then
      txt = "no endpoint serves it"
      unpriced_lines = unpriced_lines + t.lines
    elseif not lo then
      txt = "no price on " .. concat(unpriced, ",")
      unpriced_lines = unpriced_lines + t.lines
    else
      lo_sum, hi_sum = lo_sum + lo, hi_sum + hi
      txt = range(lo, hi)
      if #unpriced > 0 then txt = txt .. " (no price on " .. concat(unpriced, ",") .. ")" end
    end
    rows[#rows + 1] = { m == "" and "(none)" or (gsub(sub(m, 1, 40), "%c", "?")), format("%d", t.lines), format("%d", t.input),
                        format("%d", t.output), txt }
    for _, k in ipairs { "lines", "input", "output", "defaulted" } do tot[k] = tot[k] + t[k] end
  end
  local total_txt = (tot.lines > unpriced_lines) and range(lo_sum, hi_sum) or "-"
  if unpriced_lines > 0 then total_txt = total_txt .. format(" (+%s not priced)", plural(unpriced_lines, "line")) end
  rows[#rows + 1] = { "total", format("%d", tot.lines), format("%d", tot.input), format("%d", tot.output), total_txt }
  local w = { 5, 5, 12, 13 }
  for _, r in ipairs(rows) do
    for c = 1, 4 do w[c] = max(w[c], #r[c]) end
  end
  for _, r in ipairs(rows) do
    out[#out + 1] = format("  %-" .. w[1] .. "s %" .. w[2] .. "s %" .. w[3] .. "s %" .. w[4] .. "s  %s",
      r[1], r[2], r[3], r[4], r[5])
  end
  out[#out + 1] = "  input tokens: a quarter of each body's bytes; output tokens: its max_completion_tokens, "
    .. format("else max_tokens, else %d", DEFAULT_OUTPUT_TOKENS)
    .. (tot.defaulted > 0 and format(" (assumed for %s)", plural(tot.defaulted, "line")) or "")
  out[#out + 1] = "  cost: those tokens at the prices of the endpoints serving each model, cheapest..priciest"
    .. (pool.strategy == "cost" and ' (strategy "cost" tries the cheapest first)' or "")
  if earlier then
    out[#out + 1] = format("  --budget %s: %s already spent (recorded in the output), %s left; this estimate %s",
      report.fmt_money(o.budget), report.fmt_usd(earlier), report.fmt_usd(max(0, o.budget - earlier)),
      (tot.lines > unpriced_lines and hi_sum <= o.budget - earlier) and "fits"
        or (lo_sum > o.budget - earlier) and "does not fit" or "may not fit")
  end
  return concat(out, "\n") .. "\n"
end

return _M
