-- bench/fleet.lua: a fleet of processes on one rate-limited pool, sharing it through Redis (issue 15).
--   lua5.4 bench/fleet.lua redis|redis_killed|no_redis
-- The pool of bench/ratelimit.lua's rows: 3 mocks, --rps 100 --burst 25, x-ratelimit-* headers.
-- The fleet: 4 lua5.4 processes (FLEET_K) started together, each sending 750 requests (FLEET_N) with
-- distinct contents through client:batch at concurrency 50 (FLEET_C), all with the same `name`;
-- library defaults otherwise (FLEET_MAX_ATTEMPTS sets retry.max_attempts). Wall time = the first
-- worker's start to the last worker's end; capacity = 300 req/s x wall + the buckets' initial 75;
-- goodput = ok / capacity; 429 share = 429 answers / all attempts, from the mocks' /stats.
--   redis:        every process with redis = one redis-server. Bar (issue 15's Done-when):
--                 N/N ok, goodput >= 0.90, 429s <= 2 %, Redis round trips per request < 1 (the
--                 processes' status().redis.round_trips summed / N; Redis's own INFO commandstats
--                 printed as a cross-check).
--   redis_killed: the same, the redis-server SIGKILLed 1 s into the run. Bar: N/N ok.
--   no_redis:     the same fleet without Redis, for contrast (issue 15 measured 70 % 429s and
--                 125 failures). Figures only.
package.path = "./?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local core = require "llmrelay.core"
local mock = require "spec.support.mock"
local fleet = require "spec.support.fleet"

local row = arg[1] or "redis"
local ROWS = { redis = true, redis_killed = true, no_redis = true }
if not ROWS[row] then
  io.stderr:write("usage: bench/fleet.lua redis|redis_killed|no_redis\n")
  os.exit(2)
end
local K = tonumber(os.getenv("FLEET_K") or 4)
local N1 = tonumber(os.getenv("FLEET_N") or 750)
local C = tonumber(os.getenv("FLEET_C") or 50)
local MAX_ATTEMPTS = tonumber(os.getenv("FLEET_MAX_ATTEMPTS") or "")
local N = K * N1
local KILL_AT = 1.0 -- seconds into the run (redis_killed)

-- Redis's own count of commands served, by command (the INFO that asks left out)
local function commandstats(r)
  local out = {}
  for cmd, calls in (r:cli("INFO", "commandstats") or ""):gmatch("cmdstat_([%w|_]+):calls=(%d+)") do
    if cmd ~= "info" then out[cmd] = tonumber(calls) end
  end
  return out
end

-- Commands a client sends itself; the others in commandstats ran inside the scripts.
local CLIENT_COMMANDS = { evalsha = true, eval = true, evalsha_ro = true, eval_ro = true, ["script|load"] = true,
                          ping = true, auth = true, select = true, hello = true }

-- "sent" commands (one round trip each) and "scripted" ones between two commandstats
local function commands_between(before, after)
  local sent, scripted, parts = 0, 0, {}
  for cmd, n in pairs(after) do
    n = n - (before[cmd] or 0)
    if n > 0 then
      if CLIENT_COMMANDS[cmd] then sent = sent + n else scripted = scripted + n end
      parts[#parts + 1] = ("%s %d"):format(cmd, n)
    end
  end
  table.sort(parts)
  return sent, scripted, table.concat(parts, ", ")
end

local redis_server, f
local function bench()
  local mocks, urls = fleet.pool(3, { rps = 100, burst = 25, rl_headers = "full" })
  local redis_url
  if row ~= "no_redis" then
    redis_server = require("spec.support.redis").start()
    redis_url = redis_server.url
  end
  local retry = MAX_ATTEMPTS and { max_attempts = MAX_ATTEMPTS } or nil
  print(("fleet_%s config: %d processes x %d requests, batch concurrency %d, name = \"bench-fleet\","
    .. " redis = %s, retry = %s; pool: 3 mocks --rps 100 --burst 25 --rl-headers full")
    :format(row, K, N1, C, redis_url or "none",
            MAX_ATTEMPTS and ("{ max_attempts = " .. MAX_ATTEMPTS .. " }") or "library defaults"))
  local stats_before = redis_server and commandstats(redis_server)
  f = fleet.start { workers = K, endpoints = urls, n = N1, c = C, redis = redis_url, name = "bench-fleet",
                    retry = retry, prefix = "fleet-" .. row .. "-" }
  if row == "redis_killed" then
    core.sleep(math.max(0, f.start_at + KILL_AT - core.wall()))
    redis_server:kill()
  end
  local results = f:wait(180)
  local s = fleet.summary(results)
  local pool = fleet.pool_stats(mocks)
  if #s.errors > 0 then
    print("fleet_" .. row .. ": worker errors:\n" .. table.concat(s.errors, "\n"))
    return false
  end
  local capacity = 300 * s.wall + 75
  local goodput = s.ok / capacity
  local kinds = {}
  for k, n in pairs(s.kinds) do kinds[#kinds + 1] = ("%s %d"):format(k, n) end
  table.sort(kinds)
  print(("fleet_%s: %d/%d ok%s in %.2f s: %.1f req/s = %.2f of capacity (300 req/s x %.2f s + 75);"
    .. " 429s %d of %d attempts (%.2f %%)")
    :format(row, s.ok, N, #kinds > 0 and (" (failed: " .. table.concat(kinds, ", ") .. ")") or "",
            s.wall, s.ok / s.wall, goodput, s.wall, pool.r429, pool.attempts, pool.share))
  local first, all = 0, 0
  for _, r in ipairs(results) do
    first, all = first + fleet.at(r, "throttles", s.start + 1), all + fleet.at(r, "throttles", math.huge)
  end
  print(("  throttles (429s) the processes counted: %d, %d of them in the first second"):format(all, first))
  local pass = true
  if redis_server then
    local rt = s.round_trips / N
    print(("  redis: round trips %d = %.3f per request; fallbacks %d; errors %d; every process up at the end: %s")
      :format(s.round_trips, rt, s.fallbacks, s.redis_errors, tostring(s.all_up)))
    if row == "redis" then
      local sent, scripted, parts = commands_between(stats_before, commandstats(redis_server))
      print(("  redis INFO commandstats: %d commands sent by the clients = %.3f per request, %d more run by"
        .. " the scripts (%s)"):format(sent, sent / N, scripted, parts))
      print("  bar: N/N ok, goodput >= 0.90, 429s <= 2 %, round trips per request < 1")
      pass = s.ok == N and goodput >= 0.90 and pool.share <= 2 and rt < 1
    else
      print(("  bar: N/N ok (redis-server SIGKILLed %.1f s into the run)"):format(KILL_AT))
      pass = s.ok == N
    end
  else
    print("  no bar: the contrast for the rows with Redis")
  end
  return pass
end

local okb, pass = pcall(bench)
if f then f:kill() end
if redis_server then redis_server:stop() end
mock.stop_all()
if not okb then
  io.stderr:write("fleet_" .. row .. ": " .. tostring(pass) .. "\n")
  pass = false
end
print(("fleet_%s: %s"):format(row, pass and "PASS" or "FAIL"))
os.exit(pass and 0 or 1)
