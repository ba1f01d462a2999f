-- spec/support/fleet_worker.lua - one process of a fleet (spec/support/fleet.lua starts it):
--   lua5.4 spec/support/fleet_worker.lua TASK.json RESULT.json
-- TASK: { endpoints = { url, ... }, redis = url | table | nil, name, n, c, prefix, retry = table | nil,
--         start_at = wall seconds to begin at (all workers of a fleet share it), sample = seconds }
-- Sends n requests with distinct contents (prefix .. i) through client:batch at concurrency c and
-- writes RESULT: { ok, failed, kinds = { [kind] = count }, messages = { first few errors },
--   loaded, start, ["end"] (wall seconds), attempts, metrics = { llmrelay_redis_up = 1, ... }, redis = status().redis at the end,
--   endpoints = status() per endpoint,
--   timeline = { { t, ok, throttles (429s so far), up, round_trips, fallbacks, errors }, ... } }
-- or { error = "..." } when the client could not be built or the batch raised.
local cjson = require "cjson"
local core = require "llmrelay.core"
local llmrelay = require "llmrelay"

local wall = core.wall
local loaded = wall()
local task_file, result_file = arg[1], arg[2]

local function read_json(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return cjson.decode(s)
end

local function write_json(path, v)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  f:write(cjson.encode(v))
  f:close()
  assert(os.rename(tmp, path)) -- the harness never reads half a file
end

-- a status table with plain, finite values only (JSON has no inf/nan)
local function plain(t)
  if type(t) ~= "table" then return nil end
  local out = {}
  for k, v in pairs(t) do
    local kind = type(v)
    if kind == "number" and v == v and v ~= math.huge and v ~= -math.huge then
      out[k] = v
    elseif kind == "string" or kind == "boolean" then
      out[k] = v
    end
  end
  return out
end

local task = read_json(task_file)
local cnull = cjson.null

local function run()
  local eps = {}
  for i, url in ipairs(task.endpoints) do eps[i] = { base_url = url, name = "e" .. i } end
  local reqs = {}
  for i = 1, task.n do
    reqs[i] = { model = "m", messages = { { role = "user", content = task.prefix .. i } } }
  end
  local wait = task.start_at - wall()
  if wait > 0 then core.sleep(wait) end
  local start = wall()
  local client = llmrelay.new {
    endpoints = eps, name = task.name, concurrency = task.c,
    redis = task.redis ~= cnull and task.redis or nil,
    retry = task.retry ~= cnull and task.retry or nil,
  }
  local timeline = {}
  local function sample(ok)
    local st = client:status()
    local r, throttles = st.redis, 0
    for _, s in ipairs(st) do throttles = throttles + (s.throttles or 0) end
    timeline[#timeline + 1] = { t = wall(), ok = ok, throttles = throttles, up = r and r.up,
                                round_trips = r and r.round_trips, fallbacks = r and r.fallbacks,
                                errors = r and r.errors }
  end
  sample(0)
  local last, interval, done_ok = wall(), task.sample or 0.2, 0
  local results, summary = client:batch(reqs, {
    concurrency = task.c,
    on_result = function(_, r)
      if r.ok then done_ok = done_ok + 1 end
      local t = wall()
      if t - last >= interval then
        last = t
        sample(done_ok)
      end
    end,
  })
  local finish = wall()
  local kinds, messages = {}, {}
  for _, r in ipairs(results) do
    if not r.ok then
      local k = r.error and r.error.kind or "?"
      kinds[k] = (kinds[k] or 0) + 1
      if #messages < 3 then messages[#messages + 1] = tostring(r.error) end
    end
  end
  sample(summary.ok)
  local st = client:status()
  local endpoints = {}
  for i, s in ipairs(st) do endpoints[i] = plain(s) end
  local metrics = {} -- the llmrelay_redis_* samples of client:metrics(), by name
  for name, v in client:metrics():gmatch("\n(llmrelay_redis_[%w_]+) (%S+)") do metrics[name] = tonumber(v) end
  local out = {
    metrics = metrics, ok = summary.ok, failed = summary.failed, attempts = summary.attempts, kinds = kinds,
    messages = messages, loaded = loaded, start = start, ["end"] = finish,
    redis = plain(st.redis), endpoints = endpoints, timeline = timeline,
  }
  client:close()
  return out
end

local okr, res = pcall(run)
if not okr then res = { error = tostring(res), loaded = loaded } end
write_json(result_file, res)
os.exit(okr and 0 or 1)
