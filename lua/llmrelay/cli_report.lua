-- What `llmrelay batch` prints on stderr: the progress bar (a terminal) or
-- periodic progress lines (anything else), and the summary that ends a run.
-- Never an api key: only counts, endpoint names and states.
-- Lua 5.1 / LuaJIT / 5.4.

local core = require "llmrelay.core"
local fleet = require "llmrelay.cli_fleet"

local _M = {}

local pcall, ipairs, pairs = pcall, ipairs, pairs
local sub, format, rep = string.sub, string.format, string.rep
local floor, max, min = math.floor, math.max, math.min
local concat, sort = table.concat, table.sort

local PLAIN_INTERVAL = 2      -- seconds between progress lines when stderr is not a terminal

local function eprint(...)
  io.stderr:write(concat({ ... }), "\n")
end

function _M.is_tty(fd)
  local a = os.execute("test -t " .. fd)
  return a == true or a == 0
end

local function fmt_duration(s)
  if not s or s ~= s or s == math.huge or s < 0 then return "--" end
  s = floor(s + 0.5)
  if s >= 3600 then return format("%dh%02dm", floor(s / 3600), floor(s % 3600 / 60)) end
  if s >= 60 then return format("%dm%02ds", floor(s / 60), s % 60) end
  return format("%ds", s)
end

-- USD as people read it: cents from $100 on, finer below.
local function fmt_usd(x)
  if x >= 100 then return format("$%.2f", x) end
  if x >= 1 then return format("$%.4f", x) end
  return format("$%.6f", x)
end
_M.fmt_usd = fmt_usd

-- A budget as the user wrote it: cents when it is whole cents.
function _M.fmt_money(x)
  if x >= 0.01 and floor(x * 100 + 0.5) == x * 100 then return format("$%.2f", x) end
  return fmt_usd(x)
end

-- The endpoints whose breaker is open, and Redis while it is down.
local function open_endpoints(client)
  local names = {}
  local ok, st = pcall(client.status, client)
  if not ok then return "" end
  for _, s in ipairs(st) do
    if s.state == "open" then names[#names + 1] = s.name end
  end
  local redis = fleet.progress_note(st)
  if #names == 0 then return redis end
  local txt = concat(names, ",")
  if #txt > 30 then txt = sub(txt, 1, 27) .. "..." end
  return "  open: " .. txt .. redis
end

-- The spend on the progress line: this run's; with --budget the job's (earlier runs'
-- too, o.spent_before) and the budget.
local function spent(o, p, lead)
  if o.budget then
    return lead .. fmt_usd((p.cost or 0) + (o.spent_before or 0)) .. " of " .. _M.fmt_money(o.budget)
  end
  return p.cost and lead .. fmt_usd(p.cost) or ""
end

function _M.progress(o, client, tty)
  local last_plain, width = nil, 0
  local last_seen, last_printed
  local r = {}
  local function draw(p, final)
    local total = p.total or 0
    local pct = total > 0 and min(100, 100 * p.done / total) or 100
    if tty then
      local cells = 20
      local filled = floor(pct / 100 * cells + 0.5)
      local line = format("[%s%s] %d/%d %5.1f%%  %.1f/s  ETA %s  retries %d%s%s%s",
        rep("#", filled), rep(".", cells - filled), p.done, total, pct, p.rate or 0,
        final and "0s" or fmt_duration(p.eta), p.retries or 0,
        (p.failed or 0) > 0 and format("  failed %d", p.failed) or "",
        spent(o, p, "  spent "), open_endpoints(client))
      local pad = width > #line and rep(" ", width - #line) or ""
      width = #line
      io.stderr:write("\r", line, pad)
      io.stderr:flush()
    else
      eprint(format("llmrelay: %d/%d lines (%.1f%%), %.1f/s, eta %s, retries %d, failed %d%s%s",
        p.done, total, pct, p.rate or 0, final and "0s" or fmt_duration(p.eta), p.retries or 0,
        p.failed or 0, spent(o, p, ", spent "), open_endpoints(client)))
    end
    last_printed = p
  end
  -- on_progress: a redraw (terminal) or a line every PLAIN_INTERVAL seconds
  function r.update(p)
    if o.quiet then return end
    last_seen = p
    if tty then return draw(p) end
    local now = core.now()
    if not last_plain or now - last_plain >= PLAIN_INTERVAL then
      last_plain = now
      draw(p)
    end
  end
  -- the end of the run: the last state, once, and the bar's line ended
  function r.finish()
    if o.quiet then return end
    if last_seen and (tty or last_printed ~= last_seen) then draw(last_seen, true) end
    if tty and width > 0 then
      io.stderr:write("\n")
      width = 0
    end
  end
  -- a message between bar redraws
  function r.say(msg)
    if tty and width > 0 then
      io.stderr:write("\r", rep(" ", width), "\r")
      width = 0
    end
    eprint(msg)
  end
  return r
end

-- The run's spend by endpoint (config order, then any other) and model: one line each.
local function spend_lines(out, st, summary)
  out[#out + 1] = format("  spent %s this run (USD, from the endpoints' prices)", fmt_usd(summary.cost))
  local spend, names, listed = summary.spend or {}, {}, {}
  for _, s in ipairs(st) do
    names[#names + 1], listed[s.name] = s.name, true
  end
  local others = {}
  for name in pairs(spend) do
    if not listed[name] then others[#others + 1] = name end
  end
  sort(others)
  for _, name in ipairs(others) do names[#names + 1] = name end
  local rows, w, wm = {}, 8, 5
  for _, name in ipairs(names) do
    local models = {}
    for m in pairs(spend[name] or {}) do models[#models + 1] = m end
    sort(models)
    for _, m in ipairs(models) do
      local ep, model = sub(name, 1, 40), m == "" and "(none)" or sub(m, 1, 40)
      rows[#rows + 1] = { ep, model, spend[name][m] }
      w, wm = max(w, #ep), max(wm, #model)
    end
  end
  if #rows == 0 then return end
  out[#out + 1] = format("  %-" .. w .. "s %-" .. wm .. "s  %s", "endpoint", "model", "spent")
  for _, r in ipairs(rows) do
    out[#out + 1] = format("  %-" .. w .. "s %-" .. wm .. "s  %s", r[1], r[2], fmt_usd(r[3]))
  end
end

-- others: the input lines left to the other shards (--shard)
function _M.summary(o, client, summary, run, ledger, total_lines, others)
  local el = summary.elapsed or run.elapsed or 0
  local this_run = run.ok + run.failed + run.bad + run.cancelled
  local answered = ledger.kept + this_run - run.cancelled
  local out = {}
  out[#out + 1] = format("llmrelay batch: %d of %d input lines answered in %s (%d this run, %d from earlier runs)",
    min(answered, total_lines), total_lines, o.output .. (o.errors and " and " .. o.errors or ""),
    this_run - run.cancelled, ledger.kept)
  if o.shard then
    out[#out + 1] = format("  shard %s: took %d of the input's %d lines, left %d to the other shards",
      o.shard.label, total_lines, total_lines + (others or 0), others or 0)
  end
  out[#out + 1] = format("  this run: %d ok, %d failed, %d bad input lines%s in %s, %.1f lines/s",
    run.ok, run.failed, run.bad, run.cancelled > 0 and format(", %d cancelled", run.cancelled) or "",
    el < 60 and format("%.1f s", el) or fmt_duration(el), el > 0 and this_run / el or 0)
  if ledger.kept_errors > 0 then
    out[#out + 1] = format("  earlier runs: %d error lines kept%s", ledger.kept_errors,
      ledger.kept_failed > 0 and format(" (%d failed requests: --retry-failed sends them again)",
                                        ledger.kept_failed) or "")
  end
  local u = summary.usage or {}
  out[#out + 1] = format("  attempts %d, retries %d; tokens: %d prompt + %d completion = %d",
    summary.attempts or 0, summary.retries or 0, u.prompt_tokens or 0, u.completion_tokens or 0,
    u.total_tokens or ((u.prompt_tokens or 0) + (u.completion_tokens or 0)))
  local ok, st = pcall(client.status, client)
  if ok and #st > 0 then
    local w = 8
    for _, s in ipairs(st) do w = max(w, #s.name) end
    w = min(w, 40)
    out[#out + 1] = format("  %-" .. w .. "s %8s %8s %9s  %s", "endpoint", "ok", "failed", "attempts", "state")
    local eps = summary.endpoints or {}
    for _, s in ipairs(st) do
      local e = eps[s.name] or {}
      local state = s.state
      if s.open_for then state = state .. format(" (%s more)", fmt_duration(s.open_for)) end
      if s.throttled_for and s.throttled_for > 0 then state = state .. ", throttled" end
      out[#out + 1] = format("  %-" .. w .. "s %8d %8d %9d  %s", sub(s.name, 1, 40), e.ok or 0,
        e.failed or 0, e.attempts or s.requests or 0, state)
    end
  end
  if summary.cost then spend_lines(out, ok and st or {}, summary) end
  local redis = ok and fleet.summary_line(st)
  if redis then out[#out + 1] = redis end
  if run.lost > 0 then
    out[#out + 1] = format("  not written: %d answers, lost when the output could not be written "
      .. "(a re-run sends them again)", run.lost)
  end
  if summary.stopped or run.stopped then
    out[#out + 1] = format("  interrupted: %d lines left; run the same command again to finish them",
      max(0, total_lines - answered))
  end
  eprint(concat(out, "\n"))
end

return _M
