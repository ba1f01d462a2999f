-- llmrelay.resty.metrics: a gateway's /metrics for every nginx worker.
--
-- Each worker has its own client, and its counters (client:metrics()) count
-- that worker's traffic only. With the client's shared_dict, each worker adds
-- what its counters grew by since it last told (its deltas) to one dict key
-- per series (incr is atomic across the workers), so the dict holds the sum of
-- every worker's counters and a scrape answered by any worker shows it.
--
--   metrics.served(client)  after a gateway request: the worker tells its deltas
--                           within DELAY seconds (one timer, not one per request)
--   metrics.text(client)    the Prometheus text for a scrape: this worker tells
--                           its own deltas first, then every counter series is
--                           read from the dict (series only other workers have
--                           seen included); without a shared_dict, client:metrics()
--
-- Counters (every "# TYPE ... counter" family: requests, successes, failures,
-- throttles, tokens, cost, redis exchanges) are host-wide, as of at most DELAY
-- seconds ago for the workers that did not answer the scrape; they keep growing
-- across an nginx reload (a new worker starts from 0 and adds deltas).
-- llmrelay_spent_usd_total is already host-wide (the budget's own dict key) and
-- is shown as the worker computes it. Gauges (in_flight, breaker_state,
-- latency_ewma_seconds, success_rate, learnt_*, redis_up, redis_members, budget_usd)
-- are the answering worker's: breaker state and pacing come from the state all
-- workers share already, in_flight and the moving averages are that worker's own.

local ngx = ngx
local tonumber, ipairs, setmetatable = tonumber, ipairs, setmetatable
local match, format, sort, concat = string.match, string.format, table.sort, table.concat

local _M = {}

local DELAY = 0.1 -- seconds: how stale another worker's counters may be in a scrape
_M.DELAY = DELAY

-- Counter families that are host-wide already: shown as they are.
local OWN = { llmrelay_spent_usd_total = true }

-- client -> { dict, prefix, last = { [series] = value told }, pending }
local states = setmetatable({}, { __mode = "k" })

local function state(client)
  local s = states[client]
  if s == nil then
    local dict_name, pool = client:_shared_dict()
    local dict = dict_name and ngx.shared[dict_name]
    s = dict and { dict = dict, prefix = "llmrelay:" .. pool .. ":metrics:", last = {}, pending = false } or false
    states[client] = s
  end
  return s
end

-- The worker's exposition, parsed: families in order, each { name, head =
-- { lines }, counter = bool, series = { series text in order }, value = { [series] = number } }.
local function parse(text)
  local families, by_name, cur = {}, {}, nil
  for line in text:gmatch("[^\n]+") do
    local name, kind = match(line, "^# TYPE ([%w_:]+) (%a+)")
    local help = match(line, "^# HELP ([%w_:]+) ")
    local fname = name or help
    if fname then
      cur = by_name[fname]
      if not cur then
        cur = { name = fname, head = {}, series = {}, value = {} }
        by_name[fname] = cur
        families[#families + 1] = cur
      end
      cur.head[#cur.head + 1] = line
      if kind then cur.counter = kind == "counter" and not OWN[fname] end
    elseif cur then
      local series, v = match(line, "^(.*) (%S+)$") -- label values may hold spaces
      local n = tonumber(v)
      if series and n then
        cur.series[#cur.series + 1] = series
        cur.value[series] = n
      end
    end
  end
  return families
end

-- A series seen for the first time on this host goes into the dict's index
-- (prefix "n": how many; "i<k>": the k-th), so every worker lists it.
local function index(s, series)
  local d, p = s.dict, s.prefix
  if d:get(p .. "v" .. series) ~= nil then return end
  if d:add(p .. "k" .. series, true) then
    local k = d:incr(p .. "n", 1, 0)
    if k then d:set(p .. "i" .. k, series) end
  end
end

-- Adds what this worker's counters grew by since it last told to the dict.
local function publish(client, s)
  s.pending = false
  if client:_closed() then return nil end
  local families = parse(client:metrics())
  local d, p, last = s.dict, s.prefix, s.last
  for _, f in ipairs(families) do
    if f.counter then
      for _, series in ipairs(f.series) do
        local v = f.value[series]
        local delta = v - (last[series] or 0)
        if delta ~= 0 or last[series] == nil then
          index(s, series)
          -- a full dict refuses: the delta is told again next time
          if d:incr(p .. "v" .. series, delta, 0) then last[series] = v end
        end
      end
    end
  end
  return families
end

-- After a gateway request: the worker's deltas go to the dict within DELAY.
function _M.served(client)
  local s = state(client)
  if not s or s.pending then return end
  s.pending = true
  local ok = ngx.timer.at(DELAY, function() publish(client, s) end)
  if not ok then s.pending = false end -- too many timers: the next request or scrape tells
end

local function number(v)
  return format("%.17g", v)
end

-- The Prometheus text of a scrape.
function _M.text(client)
  local s = state(client)
  if not s then return client:metrics() end
  local families = publish(client, s)
  if not families then return client:metrics() end
  local d, p = s.dict, s.prefix
  -- every series any worker told, by family name
  local extra = {}
  local n = d:get(p .. "n") or 0
  for k = 1, n do
    local series = d:get(p .. "i" .. k)
    if series then
      local fname = match(series, "^([%w_:]+)")
      local t = extra[fname]
      if not t then t = {} extra[fname] = t end
      t[#t + 1] = series
    end
  end
  local out = {}
  for _, f in ipairs(families) do
    for _, h in ipairs(f.head) do out[#out + 1] = h .. "\n" end
    if f.counter then
      local seen, list = {}, {}
      for _, series in ipairs(f.series) do seen[series] = true list[#list + 1] = series end
      local more = extra[f.name] or {}
      sort(more)
      for _, series in ipairs(more) do
        if not seen[series] then seen[series] = true list[#list + 1] = series end
      end
      for _, series in ipairs(list) do
        local v = d:get(p .. "v" .. series) or f.value[series] or 0
        out[#out + 1] = series .. " " .. number(v) .. "\n"
      end
    else
      for _, series in ipairs(f.series) do out[#out + 1] = series .. " " .. number(f.value[series]) .. "\n" end
    end
  end
  return concat(out)
end

return _M
