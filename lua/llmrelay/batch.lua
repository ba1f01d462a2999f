-- The batch engine behind client:batch and the `llmrelay batch` CLI: pulls
-- items from a source only when a slot is free (so input is streamed), keeps
-- at most `concurrency` requests in the core, and hands every item's result
-- to the sink exactly once. Waiting yields inside llmrelay.run.
--
--   summary = batch.run(client, source, sink, opts)
--   source() -> item | nil (exhausted)
--     item = { key =, body = <request JSON>, model =, api = (nil: "chat"), timeout =, deadline =, priority =,
--              ro = <its own headers and endpoints: llmrelay.reqopts> }
--         or { key =, error = <errors table> }   (failed before sending)
--   sink(key, res): res = { ok = true, status, body = <raw JSON>, endpoint, attempts, latency }
--                      or { ok = false, error = <errors table>, status, error_body, attempts }
--   An item the client refuses before sending (invalid, or kind "budget": budget.usd
--   spent) is recorded as failed with 0 attempts, and the run goes on.
--   opts: concurrency, total, on_progress(p), progress_interval, should_stop() -> nil|"drain"|"cancel"
--   An error raised by sink or on_progress (any value: nil and false too) does
--   not stop the run: the first one is raised again once every item has ended.
--   summary = { total, ok, failed, attempts, retries, elapsed, stopped,
--               usage = { prompt_tokens, completion_tokens, total_tokens },
--               cost = USD of the priced answers (nil: none was priced),
--               spend = { [endpoint name] = { [model or ""] = USD } },
--               endpoints = { [name] = { ok, failed, attempts, cost (nil: none priced) } } }
--   Progress tables carry cost too (USD so far, nil until an answer was priced).

local core = require "llmrelay.core"
local errors = require "llmrelay.errors"

local now = core.now
local pairs, ipairs, pcall, error = pairs, ipairs, pcall, error

local _M = {}

local STOP_POLL = 0.1 -- how often should_stop is asked while waiting

-- Token counts straight from the raw body, read by the core (a full decode
-- per answer would cost more than the request).
local function usage_of(body, usage)
  local p, c = core.usage(body)
  if p then usage.prompt_tokens = usage.prompt_tokens + p end
  if c then usage.completion_tokens = usage.completion_tokens + c end
end

function _M.run(client, source, sink, opts)
  opts = opts or {}
  local conc = opts.concurrency or client:_concurrency()
  local on_progress, should_stop = opts.on_progress, opts.should_stop
  local interval = opts.progress_interval or 0.2
  local waiter = client:_waiter()
  local inflight, n_inflight = {}, 0 -- [core request id] = its item
  local usage = { prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 }
  local per_endpoint = {}
  local before = {}
  for _, s in ipairs(client:status()) do before[s.name] = s.requests end
  local done, ok, failed, attempts, sent = 0, 0, 0, 0, 0
  local cost, spend = nil, {} -- USD of the priced answers: in all, and by endpoint and model
  local t0 = now()
  local last_progress = t0
  local source_done, stopped = false, nil
  -- a callback's error, kept with a flag: error(nil) must not read as "no error"
  local cb_failed, cb_err = false, nil

  local function guarded(fn, ...)
    local okc, e = pcall(fn, ...)
    if not okc and not cb_failed then cb_failed, cb_err = true, e end
  end

  local function progress(t)
    local elapsed = t - t0
    local rate = elapsed > 0 and done / elapsed or 0
    local total = opts.total
    guarded(on_progress, {
      done = done, total = total, ok = ok, failed = failed, retries = attempts - sent,
      rate = rate, eta = (total and rate > 0) and (total - done) / rate or nil, elapsed = elapsed,
      cost = cost,
    })
    last_progress = t
  end

  local function record(key, res)
    done = done + 1
    attempts = attempts + (res.attempts or 0)
    if (res.attempts or 0) > 0 then sent = sent + 1 end
    local name = res.endpoint or (res.error and res.error.endpoint)
    local pe
    if name then
      pe = per_endpoint[name]
      if not pe then
        pe = { ok = 0, failed = 0 }
        per_endpoint[name] = pe
      end
    end
    if res.ok then
      ok = ok + 1
      if pe then pe.ok = pe.ok + 1 end
      usage_of(res.body, usage)
      local usd = res.cost
      if usd and pe then
        cost, pe.cost = (cost or 0) + usd, (pe.cost or 0) + usd
        local by = spend[name] or {}
        spend[name] = by
        local m = res.model or ""
        by[m] = (by[m] or 0) + usd
      end
    else
      failed = failed + 1
      if pe then pe.failed = pe.failed + 1 end
    end
    guarded(sink, key, res)
  end

  while true do
    local stop = should_stop and should_stop()
    if stop == "cancel" and stopped ~= "cancel" then
      stopped = "cancel"
      for id in pairs(inflight) do client:_cancel(id) end
    elseif stop == "drain" and not stopped then
      stopped = "drain"
    end
    while not stopped and not source_done and n_inflight < conc do
      local item = source()
      if item == nil then
        source_done = true
      elseif item.error then
        record(item.key, { ok = false, error = item.error, attempts = 0 })
      else
        local id, err = client:_submit(item.body, item.model, item.timeout, item.deadline, waiter, item.priority,
                                       nil, item.ro, item.api)
        if id then
          inflight[id] = item
          n_inflight = n_inflight + 1
        else
          record(item.key, { ok = false, attempts = 0, error = errors.submit_error(err) })
        end
      end
    end
    if n_inflight == 0 then break end
    client:_wait(waiter, should_stop and STOP_POLL or nil)
    local inbox = waiter.inbox
    for i = 1, #inbox do
      local r = inbox[i]
      inbox[i] = nil
      local item = inflight[r.id]
      if item ~= nil then
        inflight[r.id] = nil
        n_inflight = n_inflight - 1
        record(item.key, client:_result(r, item.ro))
      end
    end
    if on_progress then
      local t = now()
      if t - last_progress >= interval then progress(t) end
    end
  end

  local t1 = now()
  if on_progress then progress(t1) end
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
  for _, s in ipairs(client:status()) do
    local pe = per_endpoint[s.name] or { ok = 0, failed = 0 }
    pe.attempts = s.requests - (before[s.name] or 0)
    pe.state = s.state
    per_endpoint[s.name] = pe
  end
  if cb_failed then error(cb_err, 0) end
  return {
    total = done, ok = ok, failed = failed, attempts = attempts, retries = attempts - sent,
    elapsed = t1 - t0, usage = usage, endpoints = per_endpoint, stopped = stopped,
    cost = cost, spend = spend,
  }
end

return _M
