-- spec/support/fleet.lua - a fleet of llmrelay OS processes sharing one pool (issue 15), for
-- specs and the bench. Each worker is a separate interpreter running spec/support/fleet_worker.lua
-- with the repo's LUA_PATH/LUA_CPATH and the clean environment of spec/support/mock.lua.
--
--   local fleet = require "spec.support.fleet"
--   local f = fleet.start{ workers = 4, endpoints = { m1.url, m2.url, m3.url }, n = 750, c = 50,
--                          redis = url | table | nil, name = "fleet", retry = nil,
--                          prefix = "q", delay = 0.5, sample = 0.2, lua = "lua5.4" }
--     -- the workers load, then all begin at f.start_at (wall seconds, `delay` after start());
--     -- worker k sends contents prefix .. k .. "-" .. i, i = 1..n
--   local results = f:wait(60)  -- every worker's result (see fleet_worker.lua), in worker order;
--     -- a worker still running after 60 s is SIGKILLed and reported as { error = "deadline ..." };
--     -- a worker that wrote no result is { error = "exit without result: <its output>" }
--   f:kill()                    -- SIGKILL every worker still alive and remove the temp dir; idempotent
--   local s = fleet.summary(results)
--     -- { workers, ok, failed, errors = { worker errors }, kinds = { [kind] = n }, start, ["end"], wall,
--     --   round_trips, fallbacks, redis_errors, all_up, all_down, messages }
--   fleet.at(result, "round_trips", t) -- a worker's timeline field at its last sample taken by wall time t
--   fleet.stop_all()            -- kill every fleet this module started and has not reaped
--   local mocks, urls = fleet.pool(3, { rps = 100, burst = 25, rl_headers = "full" })
--                               -- that many mocks (spec/support/mock.lua options) and their urls
--   fleet.pool_stats(mocks)     -- attempts and 429s over the mocks' /stats: attempts, r429, share (%)

local cjson = require "cjson"
local core = require "llmrelay.core"
local mock = require "spec.support.mock"

local q, capture, alive = mock.quote, mock.capture, mock.alive
local wall = core.wall

local M = {}
M.WORKER = "spec/support/fleet_worker.lua"

local running = {} -- [fleet] = true
local Fleet = {}
Fleet.__index = Fleet

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function need(opts, key, kind)
  if type(opts[key]) ~= kind then
    error("fleet.start: opts." .. key .. " must be a " .. kind .. " (got " .. type(opts[key]) .. ")", 3)
  end
end

function M.start(opts)
  need(opts, "endpoints", "table")
  need(opts, "workers", "number")
  need(opts, "n", "number")
  need(opts, "c", "number")
  local lua = opts.lua or os.getenv("LUA") or "lua5.4"
  local dir = (capture("mktemp -d /tmp/llmrelay-fleet.XXXXXX 2>/dev/null") or ""):match("^%s*(.-)%s*$")
  if dir == "" then error("fleet.start: mktemp -d failed", 2) end
  local self = setmetatable({ dir = dir, pids = {}, workers = opts.workers,
                              start_at = wall() + (opts.delay or 0.5) }, Fleet)
  local env = ("LUA_PATH=%s LUA_CPATH=%s "):format(q("./?.lua;lua/?.lua;lua/?/init.lua;;"),
                                                   q("build/" .. lua .. "/?.so;;"))
  local cmds = {}
  for k = 1, opts.workers do
    local task, result = ("%s/task%d.json"):format(dir, k), ("%s/result%d.json"):format(dir, k)
    write_file(task, cjson.encode {
      endpoints = opts.endpoints, redis = opts.redis, name = opts.name or "fleet", n = opts.n, c = opts.c,
      retry = opts.retry, prefix = (opts.prefix or "q") .. k .. "-", start_at = self.start_at,
      sample = opts.sample or 0.2,
    })
    -- all workers from one shell, so they start within a few ms of each other
    cmds[k] = ("%s%s %s %s %s >%s/log%d 2>&1 </dev/null & echo $!"):format(env, q(lua), q(M.WORKER),
      q(task), q(result), q(dir), k)
  end
  local out = capture(table.concat(cmds, "\n")) or ""
  for pid in out:gmatch("%d+") do self.pids[#self.pids + 1] = tonumber(pid) end
  running[self] = true
  if #self.pids ~= opts.workers then
    self:kill()
    error("fleet.start: started " .. #self.pids .. " of " .. opts.workers .. " workers: " .. out, 2)
  end
  return self
end

local function any_alive(pids)
  for _, pid in ipairs(pids) do
    if alive(pid) then return true end
  end
  return false
end

function Fleet:wait(deadline_s)
  local limit = wall() + (deadline_s or 120)
  while any_alive(self.pids) and wall() < limit do core.sleep(0.05) end
  local late = {}
  for k, pid in ipairs(self.pids) do late[k] = alive(pid) end
  local results = {}
  for k = 1, self.workers do
    local okd, v = pcall(cjson.decode, mock.read_file(("%s/result%d.json"):format(self.dir, k)) or "")
    local log = mock.read_file(("%s/log%d"):format(self.dir, k)) or ""
    if late[k] then
      v = { error = ("deadline: worker %d still running after %s s"):format(k, deadline_s or 120) }
    elseif not okd or type(v) ~= "table" then
      v = { error = "exit without result" }
    end
    if v.error and log ~= "" then v.log = log end
    results[k] = v
  end
  self:kill()
  return results
end

function Fleet:kill()
  if self.done then return end
  self.done = true
  running[self] = nil
  for _, pid in ipairs(self.pids) do
    if alive(pid) then mock.run("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  for _ = 1, 100 do
    if not any_alive(self.pids) then break end
    core.sleep(0.02)
  end
  mock.run("rm -rf " .. q(self.dir))
end

function M.stop_all()
  local list = {}
  for f in pairs(running) do list[#list + 1] = f end
  for _, f in ipairs(list) do f:kill() end
end

-- start + wait, killing the workers if anything in between raises
function M.run(opts, deadline_s)
  local f = M.start(opts)
  local okw, res = pcall(f.wait, f, deadline_s)
  if not okw then
    f:kill()
    error(res, 0)
  end
  return res
end

function M.summary(results)
  local s = { workers = #results, ok = 0, failed = 0, errors = {}, kinds = {}, messages = {},
              round_trips = 0, fallbacks = 0, redis_errors = 0, all_up = true, all_down = true }
  for k, r in ipairs(results) do
    if r.error then
      s.errors[#s.errors + 1] = ("worker %d: %s%s"):format(k, r.error, r.log and ("\n" .. r.log) or "")
      s.all_up, s.all_down = false, false
    else
      s.ok, s.failed = s.ok + r.ok, s.failed + r.failed
      for kind, n in pairs(r.kinds) do s.kinds[kind] = (s.kinds[kind] or 0) + n end
      for _, m in ipairs(r.messages) do s.messages[#s.messages + 1] = m end
      s.start = math.min(s.start or r.start, r.start)
      s["end"] = math.max(s["end"] or r["end"], r["end"])
      local rd = r.redis or {}
      s.round_trips = s.round_trips + (rd.round_trips or 0)
      s.fallbacks = s.fallbacks + (rd.fallbacks or 0)
      s.redis_errors = s.redis_errors + (rd.errors or 0)
      s.all_up = s.all_up and rd.up == true
      s.all_down = s.all_down and rd.up == false
    end
  end
  s.wall = s.start and s["end"] - s.start
  return s
end

function M.at(result, field, t)
  local v = 0
  for _, sample in ipairs(result.timeline or {}) do
    if sample.t <= t then v = sample[field] or v end
  end
  return v
end

function M.pool(n, opts)
  local mocks, urls = {}, {}
  for i = 1, n do
    local o = { name = "fleet" .. i }
    for k, v in pairs(opts) do o[k] = v end
    mocks[i] = mock.start(o)
    urls[i] = mocks[i].url
  end
  return mocks, urls
end

function M.pool_stats(mocks)
  local attempts, r429 = 0, 0
  for _, m in ipairs(mocks) do
    local st = m:stats()
    attempts = attempts + st.requests
    r429 = r429 + (st.status["429"] or 0)
  end
  return { attempts = attempts, r429 = r429, share = attempts > 0 and 100 * r429 / attempts or 0 }
end

return M
